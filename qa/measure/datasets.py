"""Question sets with known answers: our JSONL format and SQuAD v1.1, for evaluation and calibration."""

from __future__ import annotations

import json
import random
import re
from dataclasses import dataclass
from pathlib import Path

from qa.errors import QAError


@dataclass(frozen=True)
class EvalQuestion:
    """One question with its gold answer strings.

    `source` is the document the question was asked of when the set says so
    (SQuAD), else "". An unanswerable question has no answers.
    """

    id: str
    question: str
    answers: tuple[str, ...]
    source: str = ""
    answerable: bool = True


def _file_name(number: int, title: str) -> str:
    slug = re.sub(r"[^A-Za-z0-9]+", "-", title).strip("-").lower() or "article"
    return f"{number:02d}-{slug}.txt"


def load_squad(path: Path) -> tuple[dict[str, str], list[EvalQuestion]]:
    """Documents (file name -> text) and questions of a SQuAD v1.1 JSON file.

    Each article becomes one document: its title on the first line, then its
    paragraphs separated by blank lines.
    """
    data = _read_json(path)["data"]
    documents: dict[str, str] = {}
    questions: list[EvalQuestion] = []
    for number, article in enumerate(data):
        source = _file_name(number, article["title"].replace("_", " "))
        paragraphs = [p["context"].strip() for p in article["paragraphs"]]
        documents[source] = article["title"].replace("_", " ") + "\n\n" + "\n\n".join(paragraphs) + "\n"
        for paragraph in article["paragraphs"]:
            for qa_item in paragraph["qas"]:
                answers = tuple(dict.fromkeys(a["text"] for a in qa_item["answers"]))
                questions.append(EvalQuestion(qa_item["id"], qa_item["question"], answers, source))
    return documents, questions


def load_selqa(paths: list[Path]) -> tuple[dict[str, str], list[EvalQuestion]]:
    """Documents and questions of SelQA answer-sentence-selection files (selqa-ass-*.json).

    Each article section becomes one document: its title on the first line,
    then its candidate sentences as one paragraph. A question's answers are
    its answer sentences, so the hit rule holds for the sentence that is one.
    SelQA questions were written about their section, many of them reworded
    away from its words (`is_paraphrase`), unlike most of SQuAD's.
    """
    documents: dict[str, str] = {}
    source_of: dict[str, str] = {}  # "article - section" -> its file name
    questions: list[EvalQuestion] = []
    for path in paths:
        try:
            items = json.loads(_read_text(path))
        except json.JSONDecodeError as error:
            raise QAError(f"{path} is not JSON ({error}); give a SelQA selqa-ass-*.json file") from error
        if not isinstance(items, list):
            raise QAError(f"{path} is not a SelQA answer-selection file: it is not a list of questions")
        for number, item in enumerate(items):
            title = f"{item['article']} - {item['section']}"
            if title not in source_of:
                source_of[title] = _file_name(len(source_of), title)
                sentences = " ".join(candidate.strip() for candidate in item["candidates"])
                documents[source_of[title]] = f"{title}\n\n{sentences}\n"
            answers = tuple(item["candidates"][i].strip() for i in item["answers"])
            if answers:
                questions.append(EvalQuestion(f"{path.stem}-{number}", item["question"], answers, source_of[title]))
    return documents, questions


def load_jsonl(path: Path) -> list[EvalQuestion]:
    """Questions of our JSONL format: one object a line with `question`, `answer`, `answerable`.

    Raises:
        QAError: a line is not JSON or lacks `question`.
    """
    questions = []
    for number, line in enumerate(_read_text(path).splitlines(), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
            answerable = bool(row.get("answerable", True))
            answer = row.get("answer") or ""
            questions.append(
                EvalQuestion(
                    str(row.get("id", number)),
                    str(row["question"]),
                    (str(answer),) if answerable and answer else (),
                    str(row.get("source", "")),
                    answerable,
                )
            )
        except (json.JSONDecodeError, KeyError, AttributeError) as error:
            raise QAError(f"{path}, line {number}: not a question object ({error})") from error
    return questions


def is_squad(path: Path) -> bool:
    """True when the file is SQuAD-format JSON rather than our JSONL."""
    return path.suffix.lower() == ".json"


def sample(questions: list[EvalQuestion], limit: int | None, seed: int) -> list[EvalQuestion]:
    """Shuffle with random.Random(seed), then take the first `limit` (all when None)."""
    shuffled = list(questions)
    random.Random(seed).shuffle(shuffled)
    return shuffled if limit is None else shuffled[:limit]


def write_corpus(documents: dict[str, str], folder: Path) -> None:
    """Write the documents as seed files, leaving files that already match alone."""
    folder.mkdir(parents=True, exist_ok=True)
    for name, text in documents.items():
        path = folder / name
        if not path.is_file() or path.read_text(encoding="utf-8") != text:
            path.write_text(text, encoding="utf-8")


def _read_text(path: Path) -> str:
    try:
        return Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise QAError(f"cannot read question file {path}: {error}") from error


def _read_json(path: Path) -> dict:
    try:
        data = json.loads(_read_text(path))
    except json.JSONDecodeError as error:
        raise QAError(f"{path} is not JSON ({error}); give a SQuAD v1.1 .json or a .jsonl question file") from error
    if not isinstance(data, dict) or not isinstance(data.get("data"), list):
        raise QAError(f"{path} is not SQuAD v1.1 JSON: it has no top-level `data` list of articles")
    return data
