"""Measure retrieval and answering against questions with known answers (`python -m qa eval`).

Every retriever ranks the same candidates of the same question, so the
figures of one run compare like with like. A hit is a returned sentence that
contains a gold answer string, case-insensitively; the sentence, never a
longer quote, so that quoting more cannot score more.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from qa.config import Settings
from qa.errors import IndexMissingError, QAError
from qa.measure.datasets import EvalQuestion, is_squad, load_jsonl, load_squad, write_corpus
from qa.quotes import answer_from
from qa.reader.index import Index
from qa.records import Hit, Quote
from qa.search.candidates import gather_candidates
from qa.search.fusion import RETRIEVERS
from qa.search.question import encode_question
from qa.search.ranking import Retrieval, rank
from qa.verify.rerank import PairScorer

RANK_DEPTH = 10  # MRR@10 needs the top 10
ANSWER_K = 3  # sentences qa.answer() considers by default
# The rankings that come with a confidence, and so with abstention and calibration figures.
ANSWERING = ("fusion", "default")
CALIBRATION_BINS = 10
TARGET_PRECISION = 0.9


def holds_answer(text: str, answers: tuple[str, ...]) -> bool:
    """The hit rule: the sentence contains a gold answer string, case-insensitive."""
    lowered = text.lower()
    return any(answer.lower() in lowered for answer in answers)


def rank_metrics(rankings: list[list[bool]]) -> dict[str, float]:
    """hit@1, hit@5 and MRR@10 of ranked relevance lists (one list per question)."""
    count = max(len(rankings), 1)
    first = [next((i for i, ok in enumerate(r[:RANK_DEPTH]) if ok), None) for r in rankings]
    return {
        "hit@1": sum(1 for f in first if f == 0) / count,
        "hit@5": sum(1 for f in first if f is not None and f < 5) / count,
        "mrr@10": sum(1 / (f + 1) for f in first if f is not None) / count,
    }


def prepare(
    path: Path,
    settings: Settings,
    work: Path,
    articles: str = "all",
    progress: Callable[[int, int], None] | None = None,
    read_questions: bool = True,
) -> tuple[Index, list[EvalQuestion]]:
    """The index to ask and the questions.

    A SQuAD file becomes a corpus of one document per article under
    `work/seeds`, indexed (and cached) in `work/index`; `articles` keeps the
    questions of "even"- or "odd"-numbered articles only, while the corpus
    stays whole. A JSONL file asks the index at settings (built from the
    seeds if there is none yet); `read_questions=False` skips reading it as
    ordinary questions (a follow-up set has its own reader).
    """
    import qa

    if not path.is_file():
        raise QAError(f"question file {path} does not exist")
    if is_squad(path):
        documents, questions = load_squad(path)
        write_corpus(documents, work / "seeds")
        index = qa.build_index(work / "seeds", work / "index", progress=progress)
        if articles != "all":
            order = {name: number for number, name in enumerate(documents)}
            parity = 0 if articles == "even" else 1
            questions = [q for q in questions if order[q.source] % 2 == parity]
        return index, questions
    asked = load_jsonl(path) if read_questions else []
    try:
        index = qa.load_index(settings.index_dir)
    except IndexMissingError:
        index = qa.build_index(settings.seeds_dir, settings.index_dir, progress=progress)
    return index, asked


def _rate(part: int, whole: int) -> float | None:
    return part / whole if whole else None


def auroc(confidences: list[float], correct: list[bool]) -> float | None:
    """The probability that a right answer gets a higher confidence than a wrong one (ties count half)."""
    right = np.asarray([c for c, ok in zip(confidences, correct, strict=True) if ok])
    wrong = np.asarray([c for c, ok in zip(confidences, correct, strict=True) if not ok])
    if not right.size or not wrong.size:
        return None
    above = (right[:, None] > wrong[None, :]).sum() + 0.5 * (right[:, None] == wrong[None, :]).sum()
    return float(above / (right.size * wrong.size))


def expected_calibration_error(
    confidences: list[float], correct: list[bool], bins: int = CALIBRATION_BINS
) -> float | None:
    """Over equal-width confidence bins, the mean gap between confidence and accuracy, weighted by bin size."""
    if not confidences:
        return None
    values, hits = np.asarray(confidences, dtype=np.float64), np.asarray(correct, dtype=np.float64)
    which = np.minimum((np.clip(values, 0.0, 1.0) * bins).astype(int), bins - 1)
    gap = sum(abs(values[which == b].mean() - hits[which == b].mean()) * (which == b).sum() for b in np.unique(which))
    return float(gap / len(values))


def coverage_at_precision(
    confidences: list[float], correct: list[bool], precision: float = TARGET_PRECISION
) -> float | None:
    """The largest share of all questions that can be answered, highest confidence first, at that precision or better."""
    if not confidences:
        return None
    order = np.argsort(-np.asarray(confidences, dtype=np.float64), kind="stable")
    right = np.cumsum(np.asarray(correct, dtype=np.float64)[order])
    answered = np.arange(1, len(order) + 1)
    # A threshold sits between distinct confidences only: ties are answered or abstained together.
    values = np.asarray(confidences)[order]
    cut = np.append(values[1:] != values[:-1], True)
    good = (right / answered >= precision) & cut
    return float(answered[good].max() / len(order)) if good.any() else 0.0


@dataclass
class Tally:
    """What one retriever did over the questions."""

    rankings: list[list[bool]] = field(default_factory=list)
    answerable_abstained: int = 0
    answerable_asked: int = 0
    unanswerable_abstained: int = 0
    unanswerable_asked: int = 0
    spans_checked: int = 0
    spans_wrong: list[str] = field(default_factory=list)
    confidences: list[float] = field(default_factory=list)  # one per answer given, with
    correct: list[bool] = field(default_factory=list)  # whether its top sentence is right
    answered_right: int = 0
    answered_wrong: int = 0
    unsure: int = 0

    def check_spans(self, records: list[Hit] | list[Quote], source_text: Callable[[str], str]) -> None:
        """Count records whose text is not exactly their source's text at their offsets."""
        for record in records:
            self.spans_checked += 1
            text = source_text(record.source)
            if text[record.start : record.end] != record.text or (
                text[record.context_start : record.context_start + len(record.context)] != record.context
            ):
                self.spans_wrong.append(record.citation)

    def metrics(self) -> dict[str, Any]:
        return {
            **rank_metrics(self.rankings),
            "ranked": len(self.rankings),
            "abstained_unanswerable": _rate(self.unanswerable_abstained, self.unanswerable_asked),
            "abstained_answerable": _rate(self.answerable_abstained, self.answerable_asked),
            "spans_checked": self.spans_checked,
            "spans_verified": _rate(self.spans_checked - len(self.spans_wrong), self.spans_checked),
            "spans_wrong": self.spans_wrong[:10],
            "auroc": auroc(self.confidences, self.correct),
            "ece": expected_calibration_error(self.confidences, self.correct),
            "coverage_at_90_precision": coverage_at_precision(self.confidences, self.correct),
            "answered_right": self.answered_right,
            "answered_wrong": self.answered_wrong,
            "abstained_answerable_count": self.answerable_abstained,
            "abstained_unanswerable_count": self.unanswerable_abstained,
            "unanswerable_asked": self.unanswerable_asked,
            "unsure": self.unsure,
        }


@dataclass(frozen=True)
class EvalReport:
    """Metrics per retriever over one question set, and how the set was made."""

    questions: int
    answerable: int
    unanswerable: str  # how the unanswerable questions were formed
    results: dict[str, dict[str, Any]]

    def to_dict(self) -> dict[str, Any]:
        return {
            "questions": self.questions,
            "answerable": self.answerable,
            "unanswerable": self.unanswerable,
            "retrievers": self.results,
        }


def evaluate(
    index: Index,
    questions: list[EvalQuestion],
    retrievers: tuple[str, ...] = RETRIEVERS,
    hide_own_source: bool = False,
    min_confidence: float | None = None,
    candidates: int = 50,
    progress: Callable[[int, int], None] | None = None,
    verifier: PairScorer | None = None,
) -> EvalReport:
    """Ask every question once and score each retriever's ranking of the same candidates.

    Every returned sentence and quote is checked against the text its source
    was indexed from (`index.source_text`).

    Args:
        hide_own_source: also ask each question with its own document hidden,
            as a question the sources cannot answer (for sets, like SQuAD,
            that have no unanswerable questions of their own).
        verifier: what "default" rereads the fusion's candidates with; None
            makes "default" the fusion, as QA_VERIFIER=off does.
    """
    for name in retrievers:
        if name not in RETRIEVERS:
            raise ValueError(f"unknown retriever {name!r}; choose from {', '.join(RETRIEVERS)}")
    tallies = {name: Tally() for name in retrievers}
    source_text = index.source_text
    for number, question in enumerate(questions, start=1):
        query, tokens, _ = encode_question(index, question.question)
        found = gather_candidates(index, query, tokens, candidates)
        for name, tally in tallies.items():
            retrieval = rank(index, found, tokens, RANK_DEPTH, name, question=question.question, verifier=verifier)
            tally.check_spans(retrieval.hits, source_text)
            if question.answerable:
                tally.rankings.append([holds_answer(hit.text, question.answers) for hit in retrieval.hits])
            if name not in ANSWERING:
                continue  # a baseline: it has no confidence to abstain by
            _score_answer(tally, question, retrieval, question.answerable, min_confidence, source_text)
            if hide_own_source and question.source:
                hidden = gather_candidates(index, query, tokens, candidates, exclude_source=question.source)
                hidden_retrieval = rank(
                    index, hidden, tokens, ANSWER_K, name, question=question.question, verifier=verifier
                )
                _score_answer(tally, question, hidden_retrieval, False, min_confidence, source_text)
        if progress is not None:
            progress(number, len(questions))
    how = "each answerable question asked with its own document hidden" if hide_own_source else "as marked in the file"
    return EvalReport(
        questions=len(questions),
        answerable=sum(q.answerable for q in questions),
        unanswerable=how,
        results={name: tally.metrics() for name, tally in tallies.items()},
    )


def _score_answer(
    tally: Tally,
    question: EvalQuestion,
    retrieval: Retrieval,
    answerable: bool,
    min_confidence: float | None,
    source_text: Callable[[str], str],
) -> None:
    """Count the answer qa.answer() would give: answered right or wrong, unsure, abstained; its quotes' spans.

    Only an answer with status "answered" counts as answered; "unsure" counts as abstaining.
    """
    answer = answer_from(question.question, replace(retrieval, hits=retrieval.hits[:ANSWER_K]), min_confidence)
    tally.check_spans(answer.quotes, source_text)
    right = answerable and bool(answer.related or answer.quotes) and _top_is_right(retrieval, question)
    tally.confidences.append(float(retrieval.confidence))
    tally.correct.append(right)
    tally.unsure += answer.status == "unsure"
    if answerable:
        tally.answerable_asked += 1
        tally.answerable_abstained += not answer.answered
        tally.answered_right += answer.answered and right
        tally.answered_wrong += answer.answered and not right
    else:
        tally.unanswerable_asked += 1
        tally.unanswerable_abstained += not answer.answered


def _top_is_right(retrieval: Retrieval, question: EvalQuestion) -> bool:
    return bool(retrieval.hits) and holds_answer(retrieval.hits[0].text, question.answers)


def format_table(report: EvalReport) -> str:
    """The report as plain-text tables: one row per retriever, then the confidence of those that answer."""
    header = [
        "retriever",
        "hit@1",
        "hit@5",
        "MRR@10",
        "abstain (unanswerable)",
        "abstain (answerable)",
        "spans verified",
    ]
    rows = [header]
    for name, metrics in report.results.items():
        rows.append(
            [
                name,
                f"{metrics['hit@1']:.3f}",
                f"{metrics['hit@5']:.3f}",
                f"{metrics['mrr@10']:.3f}",
                _percent(metrics["abstained_unanswerable"]),
                _percent(metrics["abstained_answerable"]),
                f"{_percent(metrics['spans_verified'])} of {metrics['spans_checked']}",
            ]
        )
    summary = f"{report.questions} questions, {report.answerable} answerable; unanswerable: {report.unanswerable}"
    lines = [summary, *_aligned(rows)]
    confident = [(name, m) for name, m in report.results.items() if name in ANSWERING]
    if confident:
        header = [
            "confidence of",
            "AUROC",
            "ECE",
            "coverage at 90% precision",
            "answered right",
            "answered wrong",
            "abstained (answerable)",
            "abstained (unanswerable)",
            "of them unsure",
        ]
        rows = [header]
        for name, m in confident:
            asked = m["ranked"]
            rows.append(
                [
                    name,
                    _decimal(m["auroc"]),
                    _decimal(m["ece"]),
                    _percent(m["coverage_at_90_precision"]),
                    f"{m['answered_right']} of {asked}",
                    f"{m['answered_wrong']} of {asked}",
                    f"{m['abstained_answerable_count']} of {asked}",
                    f"{m['abstained_unanswerable_count']} of {m['unanswerable_asked']}",
                    str(m["unsure"]),
                ]
            )
        lines += ["", *_aligned(rows)]
    return "\n".join(lines)


def _aligned(rows: list[list[str]]) -> list[str]:
    widths = [max(len(row[column]) for row in rows) for column in range(len(rows[0]))]
    lines = ["  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip() for row in rows]
    lines.insert(1, "  ".join("-" * width for width in widths))
    return lines


def _decimal(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3f}"


def _percent(value: float | None) -> str:
    return "n/a" if value is None else f"{100 * value:.1f}%"
