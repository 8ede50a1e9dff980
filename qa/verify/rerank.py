"""The verifier's use: it rereads the fusion's best candidates, reorders them, and says how sure to be.

The fusion (qa/search/fusion.py) stays the candidate generator: it is cheap
and finds the right paragraph, but inside it, and across on-topic
paragraphs, it mostly counts shared words. The cross-encoder reads the
question and each of the fusion's top `depth` sentences together, so a
sentence that answers in other words moves up, and an on-topic one that does
not answer moves down. Its scores, not the word overlap, then decide between
answering, "unsure" and "not found".
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from qa.records import Sentence
from qa.verify.antecedent import preceding, verifier_text
from qa.verify.scorer import reading


class PairScorer(Protocol):
    """What reranking needs of the verifier: one logit per (question, sentence) pair.

    A scorer may also say, as a `context` attribute, what it reads beside each
    sentence (qa.verify.scorer.CONTEXTS); one without it reads the sentence alone.
    """

    def logits(self, questions: list[str], sentences: list[str]) -> np.ndarray: ...


def scorer_context(verifier: PairScorer) -> str:
    """What the verifier reads beside each sentence ("none" unless it says otherwise)."""
    return str(getattr(verifier, "context", "none"))


def previous_sentence(sentences: Sequence[Sentence], row: int) -> str | None:
    """The sentence just before row `row` in the same document, if the index holds it there."""
    before = preceding(sentences, row, 1)
    return before[0] if before else None


def candidate_reading(sentences: Sequence[Sentence], rows: np.ndarray, context: str) -> Callable[[int], str]:
    """The sentence side of candidate `position`'s pair, as a verifier trained with `context` reads it.

    Made on demand: the verifier reads only a few of the candidates, and each
    sentence record is made from the index's tables when asked for. A
    sentence that opens with "He" or "She" is read with the name it stands
    for (qa/verify/antecedent.py).
    """

    def read(position: int) -> str:
        row = int(rows[position])
        previous = previous_sentence(sentences, row) if context != "none" else None
        return reading(verifier_text(sentences, row), previous, context)

    return read


# The sha256 of the verifier.onnx the policy below was fitted for (calibrate_verifier prints
# both). A retrained model needs its own fit; tests/verify/test_rerank.py fails until then.
FITTED_FOR = "ffa8b8a4d07e97359874572b792915dbf845a5ff6329d42c73209739ef3de477"


@dataclass(frozen=True)
class RerankPolicy:
    """How verifier logits reorder the candidates and become the answer's confidence.

    Fitted by `python -m qa.measure.calibrate_verifier` on the training data
    the verifier was not trained on (its held-aside split; README, "The
    answer verifier"), never on SQuAD's odd-numbered articles or the seed
    dev sets.

    Attributes:
        depth: how many of the fusion's best candidates the verifier reads.
            Each pair costs about 5 ms on one thread (four layers over up to
            80 tokens), so the depth is what keeps a warm answer within its
            budget; the fusion's hit@5 on SQuAD is 0.94.
        fused_weight: the fused score's weight beside the logit when ordering
            (fused scores lie between 0 and 1, logits between about -8 and 8).
            16 had the best held-aside MRR@10 of the grid (32 within 0.001):
            alone the verifier orders worse than the fusion, so it mostly
            breaks the fusion's near ties.
        intercept, top_logit, margin, window_cosine, paragraph_coverage: the
            logistic model of P(the top sentence answers) over the top logit,
            its lead over the second, and two of the fusion's signals of that
            same sentence: its best sentence-or-window cosine and the share of
            the question's IDF weight its paragraph holds. Until 2026-12-07 the
            model read the fusion's confidence instead, which describes the
            fusion's best candidate, not the reranked one that is shown, and
            whose weights were fitted on SQuAD alone; the top's own signals
            separate better on every held-aside set (README, "The answer
            verifier").
        answer_at: the confidence from which the answer is given (unless
            QA_MIN_CONFIDENCE sets another). It is the threshold that best
            tells answerable questions from ones whose document is hidden on
            the held-aside data (the largest true-minus-false answer rate,
            Youden's J). The probability is that the top sentence answers, so
            an answerable question whose best sentence is wrong counts against
            it, and its J-best threshold lies well below 0.5: 0.14.
        unsure_at: from here up to answer_at the closest sentence is shown as
            one that may not answer; the same share of answer_at as the
            fusion's band (0.2 of 0.5).
    """

    depth: int = 5
    fused_weight: float = 16.0
    intercept: float = -9.095
    top_logit: float = 0.045
    margin: float = 0.325
    window_cosine: float = 9.027
    paragraph_coverage: float = 3.873
    answer_at: float = 0.14
    unsure_at: float = 0.056

    def order_scores(self, logits: np.ndarray, fused: np.ndarray) -> np.ndarray:
        """What the reread candidates are ordered by, higher first."""
        return np.asarray(logits, dtype=np.float64) + self.fused_weight * np.asarray(fused, dtype=np.float64)

    def fused_units(self, ordering: np.ndarray) -> np.ndarray:
        """Ordering scores as fused scores nudged by the logit (fused + logit / fused_weight), at least 0.

        Without a fused weight the ordering is the logit alone, and its sigmoid is used.
        """
        values = np.asarray(ordering, dtype=np.float64)
        if self.fused_weight <= 0:
            return 1.0 / (1.0 + np.exp(-values))
        return np.maximum(values / self.fused_weight, 0.0)

    def confidence(self, top_logit: float, margin: float, window_cosine: float, paragraph_coverage: float) -> float:
        """Calibrated P(the top sentence answers the question), from its logit, its lead and its fusion signals."""
        z = self.intercept + self.top_logit * top_logit + self.margin * margin
        z += self.window_cosine * window_cosine + self.paragraph_coverage * paragraph_coverage
        return float(1.0 / (1.0 + np.exp(-z)))


def log_odds(probability: float) -> float:
    """log(p / (1 - p)), with p kept off 0 and 1."""
    p = min(max(probability, 1e-6), 1 - 1e-6)
    return float(np.log(p / (1 - p)))


@dataclass(frozen=True)
class Reranked:
    """The candidates' new order and scores, and the confidence that the first answers.

    `scores` holds, per candidate, its ordering score in the fused score's
    units (fused score + logit / fused weight, at least 0) for the reread ones,
    and 0 for the rest, which follow in the fusion's order and were never
    read. The units keep the answer's quoting rule (another sentence is quoted
    when its score is within 90% of the best's, qa/quotes.py) meaning what it
    means for the fusion alone.
    """

    order: np.ndarray
    scores: np.ndarray
    confidence: float
    logits: np.ndarray  # per reread candidate, in `reread` order
    reread: np.ndarray  # positions of the candidates the verifier read


def rerank(
    verifier: PairScorer,
    question: str,
    read: Callable[[int], str],
    fused: np.ndarray,
    signals: Callable[[int], tuple[float, float]],
    policy: RerankPolicy | None = None,
) -> Reranked:
    """Reread the fusion's `policy.depth` best candidates with the verifier and reorder them.

    Args:
        read: a candidate's sentence side (qa.verify.scorer.reading) from its
            position in `fused` (candidate_reading makes it from an index).
        fused: each candidate's fused score.
        signals: a candidate's window cosine and its paragraph's IDF coverage
            of the question, from its position in `fused`; asked only of the
            candidate that comes first.
    """
    policy = policy or RerankPolicy()
    by_fusion = np.argsort(-fused, kind="stable")
    reread = by_fusion[: policy.depth]
    logits = verifier.logits([question] * len(reread), [read(int(i)) for i in reread])
    ordering = policy.order_scores(logits, fused[reread])
    first = reread[np.argsort(-ordering, kind="stable")]
    order = np.concatenate([first, by_fusion[policy.depth :]])
    scores = np.zeros(len(fused))
    scores[reread] = policy.fused_units(ordering)
    confidence = 0.0
    if len(reread):
        top, margin = top_and_margin(logits, ordering)
        confidence = policy.confidence(top, margin, *signals(int(first[0])))
    return Reranked(order, scores, confidence, logits, reread)


def top_and_margin(logits: np.ndarray, ordering: np.ndarray) -> tuple[float, float]:
    """The first candidate's logit in this ordering, and its lead over the second's (its own logit when alone)."""
    ranked = np.asarray(logits)[np.argsort(-ordering, kind="stable")]
    return float(ranked[0]), float(ranked[0] - ranked[1]) if len(ranked) > 1 else float(ranked[0])
