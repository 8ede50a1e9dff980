"""The calibrated confidence that the top sentence answers the question."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from qa.reader.index import Index
from qa.search.candidates import Candidates

# The fusion's confidence answers from 0.5 (QA_MIN_CONFIDENCE sets another).
# From 0.2 up to there the closest sentence is shown as one that may not answer
# ("unsure") rather than hidden behind "not found". On the seed's reworded
# questions (dev_seed_paraphrase.jsonl, measured, not fitted on) 5 of the 8
# unsure answers put the right sentence first; on SQuAD questions, half of
# them with their article hidden, far fewer do (10%, on held-aside articles).
FUSION_ANSWER_AT = 0.5
FUSION_UNSURE_AT = 0.2


@dataclass(frozen=True)
class ConfidenceModel:
    """Logistic model of P(the top sentence answers the question).

    Its features are the top sentence's best sentence-or-window cosine, the
    share of the question's IDF weight its paragraph covers, and its fused
    score. The coefficients are fitted by `python -m qa.measure.calibrate` on SQuAD dev
    (README, "Retrieval and answering"); refit them whenever FusionWeights change.
    """

    intercept: float = -10.231
    window_cosine: float = 6.944
    paragraph_coverage: float = 5.359
    fused_score: float = 6.539

    def probability(self, features: np.ndarray) -> np.ndarray:
        """P(answered) for rows of (window cosine, paragraph coverage, fused score)."""
        weights = np.asarray([self.window_cosine, self.paragraph_coverage, self.fused_score])
        return 1.0 / (1.0 + np.exp(-(self.intercept + np.asarray(features, dtype=np.float64) @ weights)))


def confidence_features(
    index: Index, found: Candidates, tokens: list[str], scores: np.ndarray
) -> tuple[float, float, float]:
    """The top candidate's window cosine, its paragraph's IDF coverage of the question, its fused score."""
    top = int(np.argmax(scores))
    return (*candidate_signals(index, found, tokens, top), float(scores[top]))


def candidate_signals(index: Index, found: Candidates, tokens: list[str], position: int) -> tuple[float, float]:
    """Candidate `position`'s best sentence-or-window cosine and its paragraph's IDF coverage of the question."""
    paragraph = found.passage_rows[position : position + 1]
    coverage = float(index.sentence_lexical.coverages(tokens, paragraph, holder=index.passage_lexical)[0])
    return float(found.dense_window[position]), coverage


def confidence(features: tuple[float, float, float], model: ConfidenceModel | None = None) -> float:
    """Calibrated probability that the top sentence answers the question."""
    return float((model or ConfidenceModel()).probability(np.asarray([features]))[0])
