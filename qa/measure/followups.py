"""Follow-up question sets and their figures (`qa eval FILE` on a follow-up set): hit@1 with and without history.

A follow-up pair is a first question and a second that leans on it ("he",
"that agency"), with the gold answer string of the second. Each pair is
asked twice: the second question alone, and after the first with the answer
the system gave it. The standalone check asks ordinary questions after an
unrelated earlier turn and must give the same figures as asking them alone.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from qa.errors import QAError
from qa.measure.datasets import EvalQuestion, _file_name, _read_json, _read_text
from qa.quotes import answer_from, answer_question
from qa.reader.index import Index
from qa.records import Turn
from qa.search.followup import AUXILIARIES, refers_back, words
from qa.search.ranking import search
from qa.storage.lexical import STOPWORDS
from qa.verify.rerank import PairScorer

RANK_DEPTH = 10


@dataclass(frozen=True)
class FollowUp:
    """A first question, a follow-up leaning on it, and the follow-up's gold answer strings."""

    id: str
    first: str
    question: str
    answers: tuple[str, ...]
    source: str = ""


def is_followup_file(path: Path) -> bool:
    """True when a JSONL question file holds follow-up pairs (its first row has `first`)."""
    for line in _read_text(path).splitlines():
        if line.strip():
            try:
                row = json.loads(line)
            except json.JSONDecodeError:
                return False
            return isinstance(row, dict) and "first" in row
    return False


def load_followups(path: Path) -> list[FollowUp]:
    """Pairs from JSONL: one object a line with `first`, `question` and `answer` (a string or a list).

    Raises:
        QAError: a line is not JSON or lacks one of those fields.
    """
    pairs = []
    for number, line in enumerate(_read_text(path).splitlines(), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
            answer = row["answer"]
            answers = tuple(answer) if isinstance(answer, list) else (str(answer),)
            pairs.append(
                FollowUp(
                    str(row.get("id", number)), str(row["first"]), str(row["question"]), answers, row.get("source", "")
                )
            )
        except (json.JSONDecodeError, KeyError, TypeError, AttributeError) as error:
            raise QAError(f"{path}, line {number}: not a follow-up pair ({error})") from error
    return pairs


def write_followups(pairs: list[FollowUp], path: Path) -> None:
    """Write pairs as JSONL, the form load_followups reads."""
    lines = [
        json.dumps(
            {"id": p.id, "first": p.first, "question": p.question, "answer": list(p.answers), "source": p.source}
        )
        for p in pairs
    ]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


# SQuAD pairs: a question whose text names the article's subject is rewritten
# with a pronoun in its place, and paired with an earlier question about the
# same paragraph that names the subject too, so the pronoun has something to
# point at. Even-numbered articles by default (odd ones are held out).
#
# "it" can stand only for a whole noun phrase: where the title is part of a
# longer one ("a pharmacy technician", "the first Huguenot church", "diatomic
# oxygen", "Huguenot refugees"), the question is left out rather than made
# into "a it technician". Word lists stand in for a part-of-speech tagger.
_FUNCTION_WORDS = (
    frozenset(STOPWORDS)
    | AUXILIARIES
    | frozenset(
        [
            "about",
            "above",
            "across",
            "after",
            "against",
            "along",
            "among",
            "around",
            "before",
            "behind",
            "below",
            "beside",
            "besides",
            "between",
            "beyond",
            "during",
            "except",
            "from",
            "inside",
            "near",
            "off",
            "onto",
            "out",
            "outside",
            "over",
            "since",
            "than",
            "through",
            "throughout",
            "toward",
            "towards",
            "under",
            "until",
            "up",
            "upon",
            "within",
            "without",
            "being",
            "been",
            "also",
            "often",
            "still",
            "now",
            "only",
            "ever",
            "never",
        ]
    )
)
_DETERMINERS = frozenset(["the", "a", "an", "that", "this", "these", "those"])
# After "did" or "does", a word with such an ending is a noun, not the verb: "did Huguenot refugees settle".
_NOUN_ENDING = re.compile(r"(?:[^su]s|tion|ment|ics)$")


def _in_text(text: str, first: str, second: str) -> bool:
    return re.search(rf"\b{re.escape(first)}\s+{re.escape(second)}\b", text, re.IGNORECASE) is not None


def _with_pronoun(question: str, subject: re.Match[str], article_text: str) -> str | None:
    """The question with "it" (or "its") for the matched title, or None where the title is part of a noun phrase."""
    before = words(question[: subject.start()])
    after = words(question[subject.end() :])
    previous = before[-1] if before else ""
    following = after[0] if after and not subject["possessive"] else ""
    if question[subject.start() - 1 : subject.start()] in {'"', "“", "'", "‘"}:
        return None  # 'the origin of "Huguenot"': the word itself, which "it" cannot stand for
    if previous in {"a", "an"} or (len(before) > 1 and before[-2] in _DETERMINERS and previous not in _FUNCTION_WORDS):
        return None  # "a pharmacy technician", "the first Huguenot church"
    if previous and previous not in _FUNCTION_WORDS and _in_text(article_text, previous, subject["title"]):
        return None  # "diatomic oxygen", "informal imperialism"
    # "restrict Huguenot travel" is a noun phrase; after "did" or at the start, "Doctor Who first
    # show" and "the Normans combine" are a subject and its verb, unless the word is a noun's; and
    # a participle is a verb's wherever it stands ("the abbey in Kelso founded").
    subject_position = previous in AUXILIARIES or not before
    noun_after = following not in _FUNCTION_WORDS and not following.endswith("ed")
    if following and noun_after and (not subject_position or _NOUN_ENDING.search(following)):
        return None
    rewritten = question[: subject.start()] + ("its" if subject["possessive"] else "it") + question[subject.end() :]
    return rewritten[0].upper() + rewritten[1:] if subject.start() == 0 else rewritten


def derive_squad_followups(path: Path, per_article: int = 10, articles: str = "even") -> list[FollowUp]:
    """Follow-up pairs from the even-numbered articles of a SQuAD v1.1 file (or the "odd" or "all" ones).

    For each paragraph, the first question that names the article's title is
    the first turn, and each later question of that paragraph that names the
    title becomes a follow-up with the title replaced by "it" (a leading "the"
    dropped with it, "its" for a possessive), unless the title is part of a
    longer noun phrase there (_with_pronoun). At most `per_article` pairs per
    article. The dev set's odd articles are the held-out benchmark: the rules
    were made on even ones, and "odd" is for reporting figures, never for
    choosing anything.
    """
    if articles not in ("all", "even", "odd"):
        raise ValueError(f"articles must be all, even or odd, not {articles!r}")
    pairs: list[FollowUp] = []
    for number, article in enumerate(_read_json(path)["data"]):
        if articles != "all" and number % 2 != (articles == "odd"):
            continue
        title = article["title"].replace("_", " ")
        source = _file_name(number, title)
        subject = re.compile(rf"(?:\bthe\s+)?\b(?P<title>{re.escape(title)})\b(?P<possessive>'s\b)?", re.IGNORECASE)
        article_text = "\n".join(paragraph["context"] for paragraph in article["paragraphs"])
        taken = 0
        for paragraph in article["paragraphs"]:
            naming = [(qa, match) for qa in paragraph["qas"] if (match := subject.search(qa["question"]))]
            for later, match in naming[1:]:
                if taken >= per_article:
                    break
                rewritten = _with_pronoun(later["question"], match, article_text)
                if rewritten is None:
                    continue
                answers = tuple(dict.fromkeys(a["text"] for a in later["answers"]))
                pairs.append(FollowUp(later["id"], naming[0][0]["question"], rewritten, answers, source))
                taken += 1
    return pairs


def _holds(text: str, answers: tuple[str, ...]) -> bool:
    lowered = text.lower()
    return any(answer.lower() in lowered for answer in answers)


def _first_hit(
    index: Index,
    question: str,
    answers: tuple[str, ...],
    history: list[Turn],
    candidates: int,
    verifier: PairScorer | None,
    min_confidence: float | None,
    sources: list[str] | None = None,
) -> tuple[bool, bool, int]:
    """Whether the top sentence holds an answer, whether the question is answered, and how many searches it took."""
    found = search(
        index, question, k=RANK_DEPTH, candidates=candidates, history=history, verifier=verifier, sources=sources
    )
    hit = bool(found.hits) and _holds(found.hits[0].text, answers)
    return hit, answer_from(question, found, min_confidence).answered, found.searches


def evaluate_followups(
    index: Index,
    pairs: list[FollowUp],
    min_confidence: float | None = None,
    candidates: int = 50,
    progress: Callable[[int, int], None] | None = None,
    verifier: PairScorer | None = None,
) -> dict[str, Any]:
    """hit@1 of each follow-up asked alone and after its first question (with the answer that got).

    `verifier` is what qa.answer rereads with (None: the fusion alone, QA_VERIFIER=off). "taken as
    follow-ups" counts the pairs whose second question is always searched with its history
    (qa.search.followup.refers_back); "searched again" those that might lean on the first, found
    no confident answer alone or answered from another document than the first's, and were
    searched a second time with it (qa.search.ranking.search).
    A pair that names its document (SQuAD's) is also asked with history and that document hidden,
    where nothing answers: "answered with its article hidden" is the share answered anyway.
    """
    alone = with_history = right_alone = right_with_history = wrong_with_history = again = 0
    hidden = hidden_answered = 0
    taken = sum(refers_back(pair.question) for pair in pairs)
    for number, pair in enumerate(pairs, start=1):
        earlier = answer_question(
            index, pair.first, min_confidence=min_confidence, candidates=candidates, verifier=verifier
        )
        history = [Turn(pair.first, earlier)]
        hit, answered, _ = _first_hit(index, pair.question, pair.answers, [], candidates, verifier, min_confidence)
        alone += hit
        right_alone += hit and answered
        hit, answered, searches = _first_hit(
            index, pair.question, pair.answers, history, candidates, verifier, min_confidence
        )
        with_history += hit
        right_with_history += hit and answered
        wrong_with_history += answered and not hit
        again += searches > 1
        others = sorted(set(index.sources) - {pair.source}) if pair.source in index.sources else []
        if others:
            hidden += 1
            hidden_answered += _first_hit(
                index, pair.question, pair.answers, history, candidates, verifier, min_confidence, others
            )[1]
        if progress is not None:
            progress(number, len(pairs))
    count = max(len(pairs), 1)
    figures: dict[str, Any] = {
        "pairs": len(pairs),
        "taken as follow-ups": taken,
        "searched again with history": again,
        "hit@1 alone": alone / count,
        "hit@1 with history": with_history / count,
        "answered right alone": right_alone / count,
        "answered right with history": right_with_history / count,
        "answered wrong with history": wrong_with_history / count,
    }
    if hidden:
        figures["answered with its article hidden"] = hidden_answered / hidden
    return figures


def standalone_check(
    index: Index,
    questions: list[EvalQuestion],
    min_confidence: float | None = None,
    candidates: int = 50,
    verifier: PairScorer | None = None,
) -> dict[str, Any]:
    """Each question asked alone and after an unrelated earlier turn (the question half the set away).

    Returns hit@1, abstention on answerable and unanswerable questions both
    ways, and how many questions got different top hits or answers.
    """
    figures = {"alone": _Tally(), "after an unrelated turn": _Tally()}
    changed = 0
    for number, question in enumerate(questions):
        other = questions[(number + len(questions) // 2) % len(questions)].question
        earlier = Turn(
            other,
            answer_question(index, other, min_confidence=min_confidence, candidates=candidates, verifier=verifier),
        )
        results = []
        for name, history in (("alone", []), ("after an unrelated turn", [earlier])):
            retrieval = search(index, question.question, k=3, candidates=candidates, history=history, verifier=verifier)
            result = answer_from(question.question, retrieval, min_confidence)
            figures[name].add(question, result.answered, [hit.text for hit in retrieval.hits])
            results.append((result.answered, [hit.id for hit in retrieval.hits], retrieval.confidence))
        changed += results[0] != results[1]
    return {"questions": len(questions), "changed": changed, **{name: t.figures() for name, t in figures.items()}}


@dataclass
class _Tally:
    answerable: int = 0
    hits: int = 0
    answerable_abstained: int = 0
    unanswerable: int = 0
    unanswerable_abstained: int = 0

    def add(self, question: EvalQuestion, answered: bool, texts: list[str]) -> None:
        """Count one question: its top sentence (the sentence-level hit rule) and whether it was answered."""
        if question.answerable:
            self.answerable += 1
            self.answerable_abstained += not answered
            self.hits += bool(texts) and _holds(texts[0], question.answers)
        else:
            self.unanswerable += 1
            self.unanswerable_abstained += not answered

    def figures(self) -> dict[str, float | None]:
        def rate(part: int, whole: int) -> float | None:
            return part / whole if whole else None

        return {
            "hit@1": rate(self.hits, self.answerable),
            "abstained_answerable": rate(self.answerable_abstained, self.answerable),
            "abstained_unanswerable": rate(self.unanswerable_abstained, self.unanswerable),
        }


def history_latency(
    index: Index, pairs: list[FollowUp], rounds: int = 10, candidates: int = 50, verifier: PairScorer | None = None
) -> dict[str, float]:
    """Median warm answer() time in ms of each follow-up asked alone and with its first turn, in one run.

    Calls alternate (alone, with history) so that the machine's load falls on both alike. The
    added time is also given over the pairs searched twice with history (Retrieval.searches),
    which the median over all pairs hides when they are few; NaN when there are none.
    """
    import statistics
    import time

    earlier = {
        p.id: Turn(p.first, answer_question(index, p.first, candidates=candidates, verifier=verifier)) for p in pairs
    }
    twice = set()
    for pair in pairs:  # warm: caches, the ONNX session, BM25 structures
        found = search(index, pair.question, candidates=candidates, history=[earlier[pair.id]], verifier=verifier)
        if found.searches > 1:
            twice.add(pair.id)
    alone: list[float] = []
    with_history: list[float] = []
    added_twice: list[float] = []
    for _ in range(rounds):
        for pair in pairs:
            for times, history in ((alone, []), (with_history, [earlier[pair.id]])):
                started = time.perf_counter()
                answer_question(index, pair.question, candidates=candidates, history=history, verifier=verifier)
                times.append(1000 * (time.perf_counter() - started))
            if pair.id in twice:
                added_twice.append(with_history[-1] - alone[-1])
    return {
        "calls each": float(len(alone)),
        "median ms alone": statistics.median(alone),
        "median ms with history": statistics.median(with_history),
        "median added ms": statistics.median(w - a for w, a in zip(with_history, alone, strict=True)),
        "pairs searched twice": float(len(twice)),
        "median added ms, searched twice": statistics.median(added_twice) if added_twice else float("nan"),
    }
