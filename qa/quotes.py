"""Ranked hits turned into verbatim quotes with citations, or an honest abstention."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

from qa.reader.index import Index
from qa.records import Answer, Hit, Quote
from qa.search.confidence import FUSION_ANSWER_AT, FUSION_UNSURE_AT
from qa.search.followup import History
from qa.search.ranking import Retrieval, search
from qa.verify.rerank import PairScorer

# Besides the best sentence, quote the other top-k sentences only when their
# fused score is this close to the best: a clearly weaker sentence is listed
# as related instead of diluting the answer. On SQuAD's held-out split (see
# `python -m qa.measure.calibrate`), 0.9 gives about a third of answers an extra quote,
# and when the best sentence is wrong an extra quote holds the answer about
# 4 times in 10; 0.95 halves that rescue, 0.85 floods answers with quotes.
QUOTE_MARGIN = 0.9
NOT_FOUND = "Not found in the sources."
UNSURE = "The closest sentence, which may not answer it:"


def _adjacent(first: Hit, second: Hit) -> bool:
    """True when second follows first in the same paragraph and page with only whitespace between."""
    same_place = (first.source, first.paragraph, first.page) == (second.source, second.paragraph, second.page)
    if not same_place or second.start < first.end:
        return False
    gap = first.context[first.end - first.context_start : second.start - first.context_start]
    return not gap.strip()


def _quote(group: list[Hit]) -> Quote:
    first, last = group[0], group[-1]
    best = max(group, key=lambda hit: hit.score)
    return Quote(
        text=first.context[first.start - first.context_start : last.end - first.context_start],
        location=replace(first.location, end=last.end),
        score=best.score,
        context=first.context,
        context_start=first.context_start,
        sentence_ids=tuple(hit.id for hit in group),
        dense_rank=best.dense_rank,
        lexical_rank=best.lexical_rank,
    )


def make_quotes(hits: list[Hit]) -> list[Quote]:
    """Quotes from hits, merging sentences that stand next to each other; best first."""
    ordered = sorted(hits, key=lambda hit: (hit.source, hit.start))
    groups: list[list[Hit]] = []
    for hit in ordered:
        if groups and _adjacent(groups[-1][-1], hit):
            groups[-1].append(hit)
        else:
            groups.append([hit])
    return sorted((_quote(group) for group in groups), key=lambda quote: -quote.score)


def answer_question(
    index: Index,
    question: str,
    k: int = 3,
    min_confidence: float | None = None,
    candidates: int = 50,
    verifier: PairScorer | None = None,
    history: History | None = None,
    sources: Sequence[str] | str | None = None,
) -> Answer:
    """Quote the sentences that answer the question, or abstain and list related ones; names the build used.

    `history` and `sources` go to search(): earlier turns and a restriction to some documents.
    `min_confidence` None answers from the confidence model's own threshold (answer_from).
    """
    retrieval = search(index, question, k=k, candidates=candidates, history=history, sources=sources, verifier=verifier)
    answer = answer_from(question, retrieval, min_confidence)
    return replace(answer, build=index.path.name)


def answer_status(
    confidence: float, min_confidence: float = FUSION_ANSWER_AT, unsure_confidence: float = FUSION_UNSURE_AT
) -> str:
    """ "answered" at or above min_confidence, "unsure" at or above unsure_confidence, else "not_found"."""
    if confidence >= min_confidence:
        return "answered"
    return "unsure" if confidence >= min(unsure_confidence, min_confidence) else "not_found"


def answer_from(question: str, retrieval: Retrieval, min_confidence: float | None = None) -> Answer:
    """The answer a retrieval supports: quotes when it is confident enough, else related hits.

    "Confident enough" is the retrieval's own threshold (`answer_at`: the
    fusion's 0.5, or the verifier's RerankPolicy.answer_at) unless
    `min_confidence` (QA_MIN_CONFIDENCE) sets one. Below it but not far below
    (from `unsure_at`), the answer is "unsure": it has no quotes, and its first
    related hit is the closest sentence, shown as one that may not answer.
    """
    hits = retrieval.hits
    threshold = retrieval.answer_at if min_confidence is None else min_confidence
    status = answer_status(retrieval.confidence, threshold, retrieval.unsure_at) if hits else "not_found"
    if status != "answered":
        return Answer(question, False, round(retrieval.confidence, 4), [], hits, retrieval.notes, status=status)
    # A sentence with no score (never reread by the verifier) is never quoted beside the best.
    chosen = [hits[0]] + [hit for hit in hits[1:] if hit.score > 0 and hit.score >= QUOTE_MARGIN * hits[0].score]
    related = [hit for hit in hits if hit not in chosen]
    return Answer(question, True, round(retrieval.confidence, 4), make_quotes(chosen), related, retrieval.notes)
