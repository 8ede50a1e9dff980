"""SQuAD v1.1 as a seed corpus and a question set, for evaluation and calibration."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class SquadQuestion:
    """One question with its gold answer strings and the document it was asked of."""

    id: str
    question: str
    answers: tuple[str, ...]
    source: str


def _file_name(number: int, title: str) -> str:
    slug = re.sub(r"[^A-Za-z0-9]+", "-", title).strip("-").lower() or "article"
    return f"{number:02d}-{slug}.txt"


def load_squad(path: Path) -> tuple[dict[str, str], list[SquadQuestion]]:
    """Documents (file name -> text) and questions of a SQuAD v1.1 JSON file.

    Each article becomes one document: its title on the first line, then its
    paragraphs separated by blank lines.
    """
    data = json.loads(Path(path).read_text(encoding="utf-8"))["data"]
    documents: dict[str, str] = {}
    questions: list[SquadQuestion] = []
    for number, article in enumerate(data):
        source = _file_name(number, article["title"].replace("_", " "))
        paragraphs = [p["context"].strip() for p in article["paragraphs"]]
        documents[source] = article["title"].replace("_", " ") + "\n\n" + "\n\n".join(paragraphs) + "\n"
        for paragraph in article["paragraphs"]:
            for qa_item in paragraph["qas"]:
                answers = tuple(dict.fromkeys(a["text"] for a in qa_item["answers"]))
                questions.append(SquadQuestion(qa_item["id"], qa_item["question"], answers, source))
    return documents, questions


def write_corpus(documents: dict[str, str], folder: Path) -> None:
    """Write the documents as seed files, leaving files that already match alone."""
    folder.mkdir(parents=True, exist_ok=True)
    for name, text in documents.items():
        path = folder / name
        if not path.is_file() or path.read_text(encoding="utf-8") != text:
            path.write_text(text, encoding="utf-8")
