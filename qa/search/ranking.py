"""A question's k best sentences as hits, with the confidence that the best one answers it."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import partial

import numpy as np

from qa.errors import BadQuestionError
from qa.reader.index import Index
from qa.records import Hit
from qa.search.candidates import Candidates, gather_candidates
from qa.search.confidence import (
    FUSION_ANSWER_AT,
    FUSION_UNSURE_AT,
    candidate_signals,
    confidence,
    confidence_features,
)
from qa.search.followup import Carry, History, blend, carry_over, conversation_sources, parse_history
from qa.search.fusion import FusionWeights, fused_scores, retriever_scores
from qa.search.question import encode_question, prepare_question
from qa.search.scope import resolve_sources
from qa.verify.rerank import PairScorer, RerankPolicy, candidate_reading, rerank, scorer_context


@dataclass
class Retrieval:
    """Ranked hits plus what the answer step needs to judge them.

    `answer_at` and `unsure_at` are the thresholds of the model the confidence
    came from: the fusion's (0.5 and 0.2) or the verifier's RerankPolicy.
    `searches` is 2 when a question that might lean on an earlier turn was
    searched alone and then again with the carry-over (search()).
    """

    hits: list[Hit]
    confidence: float
    notes: list[str] = field(default_factory=list)
    answer_at: float = FUSION_ANSWER_AT
    unsure_at: float = FUSION_UNSURE_AT
    searches: int = 1


def _ranks(rows: np.ndarray) -> dict[int, int]:
    return {int(row): rank for rank, row in enumerate(rows, start=1)}


def _hits(
    index: Index, found: Candidates, order: np.ndarray, scores: np.ndarray, weights: FusionWeights, k: int
) -> list[Hit]:
    """The first k candidates in `order` (positions into `found`) as hits carrying `scores`."""
    dense_rank, lexical_rank = _ranks(found.dense_ranking), _ranks(found.lexical_ranking)
    passage_scores = weights.dense_passage * found.passage_dense + weights.lexical_passage * found.passage_lexical
    # Every sentence of a paragraph carries that paragraph's score.
    passage_score = dict(zip(found.passage_rows.tolist(), passage_scores.tolist(), strict=True))
    passage_rank = _ranks(np.asarray(sorted(passage_score, key=lambda p: -passage_score[p])))
    hits = []
    for position in order[:k]:
        row, passage_row = int(found.rows[position]), int(found.passage_rows[position])
        sentence, passage = index.sentences[row], index.passages[passage_row]
        hits.append(
            Hit(
                id=sentence.id,
                text=sentence.text,
                location=sentence.citation,
                score=round(float(scores[position]), 6),
                dense_rank=dense_rank.get(row),
                lexical_rank=lexical_rank.get(row),
                passage_rank=passage_rank[passage_row],
                dense_score=round(float(found.dense[position]), 6),
                lexical_score=round(float(found.lexical_raw[position]), 6),
                context=passage.text,
                context_start=passage.start,
            )
        )
    return hits


def rank(
    index: Index,
    found: Candidates,
    tokens: list[str],
    k: int,
    retriever: str = "default",
    weights: FusionWeights | None = None,
    question: str = "",
    verifier: PairScorer | None = None,
) -> Retrieval:
    """The k best candidates by one retriever, with the confidence that the best answers.

    "default" is what qa.answer ranks by: with a verifier, the fusion's best
    candidates reread by it, and its confidence (qa/verify/rerank.py);
    without one, the fusion. The fusion's confidence model was fitted on its
    own scores, so the baselines (bm25, dense, rrf) get NaN.
    """
    weights = weights or FusionWeights()
    if retriever == "default" and verifier is not None:
        fused = fused_scores(found, weights)
        read = candidate_reading(index.sentences, found.rows, scorer_context(verifier))
        policy = RerankPolicy()
        reranked = rerank(verifier, question, read, fused, partial(candidate_signals, index, found, tokens), policy)
        hits = _hits(index, found, reranked.order, reranked.scores, weights, k)
        return Retrieval(hits, reranked.confidence, answer_at=policy.answer_at, unsure_at=policy.unsure_at)
    scored = "fusion" if retriever == "default" else retriever
    scores = retriever_scores(found, scored, weights)
    hits = _hits(index, found, np.argsort(-scores, kind="stable"), scores, weights, k)
    belief = float("nan")
    if scored == "fusion":
        belief = confidence(confidence_features(index, found, tokens, scores))
    return Retrieval(hits, belief)


def search(
    index: Index,
    question: str,
    k: int = 5,
    candidates: int = 50,
    weights: FusionWeights | None = None,
    verifier: PairScorer | None = None,
    history: History | None = None,
    sources: Sequence[str] | str | None = None,
) -> Retrieval:
    """The k best sentences for the question: fused from dense and BM25 evidence, reread by the verifier if given.

    `history` (earlier turns, qa/search/followup.py) shapes the search of a
    follow-up; `sources` (paths or globs, qa/search/scope.py) keeps only those documents.

    Raises:
        BadQuestionError: the question is empty or has no words, k < 1, or the history is malformed.
        SourceNotFoundError: a source pattern matches no indexed source.
    """
    if not isinstance(k, int) or k < 1:
        raise BadQuestionError("k must be a whole number of at least 1")
    turns = parse_history(history)
    only = resolve_sources(index.sources, sources)
    cleaned = prepare_question(question)[0]
    carry = carry_over(index, cleaned, turns) if turns else None
    encoded = encode_question(index, question, carry.prefix if carry else "")
    retrieval = _search(index, encoded, cleaned, carry, k, candidates, weights, verifier, only)
    if carry is None and turns and retrieval.hits:
        # "Which NFL team won it?": a pronoun that may point at an earlier turn. Unanswered
        # alone, the question is searched again with the carry-over, and the more confident
        # wins. Answered alone from another document than the previous answer's, it is
        # searched again too, and the carried search wins if it answers from that document
        # (one the question may search: a scope that leaves it out leaves nothing to go back to).
        conversation = conversation_sources(turns)
        if only is not None:
            conversation &= only
        unanswered = retrieval.confidence < retrieval.answer_at
        strayed = not unanswered and bool(conversation) and retrieval.hits[0].source not in conversation
        tentative = carry_over(index, cleaned, turns, tentative=True) if unanswered or strayed else None
        if tentative is not None:
            if tentative.prefix:  # no earlier answer to blend in: the earlier questions are embedded in front
                encoded = encode_question(index, question, tentative.prefix)
            carried = _search(index, encoded, cleaned, tentative, k, candidates, weights, verifier, only)
            if unanswered:
                better = carried.confidence > retrieval.confidence
            else:
                stays = bool(carried.hits) and carried.hits[0].source in conversation
                better = stays and carried.confidence >= carried.answer_at
            retrieval = carried if better else retrieval
            retrieval.searches = 2
    return retrieval


def _search(
    index: Index,
    encoded: tuple[np.ndarray, list[str], list[str]],
    cleaned: str,
    carry: Carry | None,
    k: int,
    candidates: int,
    weights: FusionWeights | None,
    verifier: PairScorer | None,
    only: frozenset[str] | None,
) -> Retrieval:
    """One search of the question (`encoded` by encode_question), shaped by `carry` when it has one."""
    query, tokens, notes = encoded
    notes = list(notes)
    if not index.sentences:
        return Retrieval([], 0.0, notes)
    found = gather_candidates(index, blend(query, carry), tokens, candidates, only=only, carry=carry)
    # The confidence weighs the carried words too: "What does he think?" is about whoever "he" was.
    retrieval = rank(
        index,
        found,
        [*tokens, *(carry.weights if carry else ())],
        k,
        weights=weights,
        # The verifier reads the question as searched: cleaned, cut to length, and with what a follow-up leans on.
        question=carry.verifier_question(cleaned) if carry else cleaned,
        verifier=verifier,
    )
    retrieval.notes = [*notes, carry.note()] if carry else notes
    return retrieval
