"""Fusion of the normalised signals into one sentence score, and the baselines it is measured against."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from qa.search.candidates import Candidates

# The single-signal baselines, the fusion, and "default": what qa.answer ranks
# by, the fusion's best candidates reread by the answer verifier (the fusion
# alone when QA_VERIFIER=off). See qa/search/ranking.py.
RETRIEVERS = ("bm25", "dense", "rrf", "fusion", "default")


@dataclass(frozen=True)
class FusionWeights:
    """Weights of the normalised signals in the fused sentence score.

    Dense scores are cosines, already on a fixed scale: of the sentence, of its
    best word window (a long sentence's own vector blurs the clause a question
    is about) and of its paragraph. BM25 scores are divided by the query's best
    BM25 score, because raw BM25 grows with query length and corpus statistics
    and cannot be mixed with cosines as it is. Coverage is the share of the
    question's IDF weight whose terms the sentence contains (0 to 1). Rank
    fusion (RRF) would throw away how far apart the scores are, which is what
    tells a clear winner from a near tie inside one paragraph.

    The weights are the best MRR@10 on a grid, fitted on even-numbered SQuAD
    dev articles and scored on the odd-numbered ones: `python -m qa.measure.calibrate`
    (README, "Retrieval and answering"). Sentence BM25 earns no weight there
    once paragraph BM25 and coverage are in. Window vectors are pooled from
    the sentence's own token vectors (qa/embed/encoder.py); the weights were
    refitted when they replaced separately embedded windows.
    """

    dense_sentence: float = 0.20
    lexical_sentence: float = 0.00
    dense_passage: float = 0.40
    lexical_passage: float = 0.10
    coverage: float = 0.30
    dense_window: float = 0.00


def fuse(
    dense_sentence: np.ndarray,
    lexical_sentence: np.ndarray,
    dense_passage: np.ndarray,
    lexical_passage: np.ndarray,
    coverage: np.ndarray,
    dense_window: np.ndarray,
    weights: FusionWeights,
) -> np.ndarray:
    """Weighted sum of the normalised signals, one value per candidate sentence."""
    return (
        weights.dense_sentence * dense_sentence
        + weights.lexical_sentence * lexical_sentence
        + weights.dense_passage * dense_passage
        + weights.lexical_passage * lexical_passage
        + weights.coverage * coverage
        + weights.dense_window * dense_window
    )


def fused_scores(found: Candidates, weights: FusionWeights) -> np.ndarray:
    """The fused score of every candidate, less any follow-up penalty (qa/search/followup.py)."""
    fused = fuse(
        found.dense,
        found.lexical,
        found.passage_dense,
        found.passage_lexical,
        found.coverage,
        found.dense_window,
        weights,
    )
    return fused if found.penalty is None else fused - found.penalty


def reciprocal_rank_fusion(found: Candidates, k: int = 60) -> np.ndarray:
    """Plain RRF of the dense and BM25 rankings, the baseline the fusion must beat.

    k = 60 as in Cormack, Clarke and Buettcher (SIGIR 2009), where it was found
    robust across collections without tuning.
    """
    position = {row: number for number, row in enumerate(found.rows.tolist())}
    scores = np.zeros(len(found.rows))
    for ranked in (found.dense_ranking, found.lexical_ranking):
        for rank, row in enumerate(ranked.tolist(), start=1):
            scores[position[row]] += 1 / (k + rank)
    return scores


def retriever_scores(found: Candidates, retriever: str, weights: FusionWeights | None = None) -> np.ndarray:
    """Scores that order the candidates as one retriever would.

    "fusion" is the weighted fusion; "bm25", "dense" and their reciprocal rank fusion
    "rrf" are the sentence-level baselines it is measured against. Each baseline's top 10 is exact: its own
    top `candidates` are always among the candidates.
    """
    if retriever == "bm25":
        return found.lexical_raw
    if retriever == "dense":
        return found.dense
    if retriever == "rrf":
        return reciprocal_rank_fusion(found)
    if retriever == "fusion":
        return fused_scores(found, weights or FusionWeights())
    raise ValueError(f"unknown retriever {retriever!r}; choose one of {', '.join(RETRIEVERS[:-1])}")
