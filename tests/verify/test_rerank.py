"""Reranking by verifier logits, with a scorer whose logits are set by the test; and what it is given to read."""

from __future__ import annotations

import numpy as np
import pytest

from qa.reader.index import Index
from qa.verify.rerank import FITTED_FOR, RerankPolicy, rerank
from qa.verify.scorer import CHECKSUM_FILE, MODEL_DIR


class SetLogits:
    """A stand-in verifier: each sentence's logit is given; it records what it was asked."""

    def __init__(self, logits: dict[str, float]) -> None:
        self.logits_by_text = logits
        self.asked: list[tuple[str, str]] = []

    def logits(self, questions: list[str], sentences: list[str]) -> np.ndarray:
        self.asked += list(zip(questions, sentences, strict=True))
        return np.asarray([self.logits_by_text[s] for s in sentences], dtype=np.float32)


TEXTS = ["a", "b", "c", "d", "e"]
FUSED = np.asarray([0.9, 0.8, 0.7, 0.6, 0.5])


def flat(position: int) -> tuple[float, float]:
    """The same window cosine and coverage for every candidate."""
    return 0.5, 0.5


def test_only_the_fusions_best_are_reread_and_they_come_first() -> None:
    scorer = SetLogits({"a": -2.0, "b": 3.0, "c": 0.5})
    result = rerank(scorer, "q?", TEXTS.__getitem__, FUSED, flat, RerankPolicy(depth=3, fused_weight=0.0))
    assert scorer.asked == [("q?", "a"), ("q?", "b"), ("q?", "c")]
    assert result.order.tolist() == [1, 2, 0, 3, 4]  # b, c, a by logit; then d, e in the fusion's order
    assert result.scores[3] == result.scores[4] == 0.0
    assert result.scores[1] == pytest.approx(1 / (1 + np.exp(-3.0)))


def test_the_fused_weight_breaks_near_ties() -> None:
    scorer = SetLogits({"a": 1.0, "b": 1.05, "c": -5.0})
    assert rerank(scorer, "q", TEXTS.__getitem__, FUSED, flat, RerankPolicy(depth=3, fused_weight=0.0)).order[0] == 1
    assert rerank(scorer, "q", TEXTS.__getitem__, FUSED, flat, RerankPolicy(depth=3, fused_weight=1.0)).order[0] == 0


def test_confidence_grows_with_the_top_logit_and_its_lead() -> None:
    policy = RerankPolicy(
        depth=3, fused_weight=0.0, intercept=-1.0, top_logit=1.0, margin=0.5, window_cosine=0.0, paragraph_coverage=0.0
    )
    sure = rerank(SetLogits({"a": 4.0, "b": -1.0, "c": -2.0}), "q", TEXTS.__getitem__, FUSED, flat, policy).confidence
    close = rerank(SetLogits({"a": 4.0, "b": 3.9, "c": -2.0}), "q", TEXTS.__getitem__, FUSED, flat, policy).confidence
    low = rerank(SetLogits({"a": -3.0, "b": -3.5, "c": -4.0}), "q", TEXTS.__getitem__, FUSED, flat, policy).confidence
    assert sure > close > low
    assert sure == pytest.approx(1 / (1 + np.exp(-(-1.0 + 4.0 + 0.5 * 5.0))))


def test_fewer_candidates_than_the_depth() -> None:
    result = rerank(SetLogits({"a": 0.0}), "q", ["a"].__getitem__, np.asarray([0.3]), flat, RerankPolicy(depth=20))
    assert result.order.tolist() == [0] and 0.0 < result.confidence < 1.0


def test_the_shown_sentences_own_cosine_and_coverage_count_as_weighted() -> None:
    scorer = SetLogits({"a": 1.0, "b": 3.0, "c": -1.0})
    asked: list[int] = []

    def signals(position: int) -> tuple[float, float]:
        asked.append(position)
        return (0.8, 0.1) if position == 1 else (0.1, 0.9)

    weighted = RerankPolicy(depth=3, fused_weight=0.0, window_cosine=2.0, paragraph_coverage=1.0)
    result = rerank(scorer, "q", TEXTS.__getitem__, FUSED, signals, weighted)
    assert asked == [1]  # only of the candidate the logits put first, b, not of the fusion's first, a
    expected = weighted.intercept + weighted.top_logit * 3.0 + weighted.margin * 2.0 + 2.0 * 0.8 + 1.0 * 0.1
    assert result.confidence == pytest.approx(1 / (1 + np.exp(-expected)))
    ignored = RerankPolicy(depth=3, fused_weight=0.0, window_cosine=0.0, paragraph_coverage=0.0)
    assert (
        rerank(scorer, "q", TEXTS.__getitem__, FUSED, signals, ignored).confidence
        == rerank(scorer, "q", TEXTS.__getitem__, FUSED, flat, ignored).confidence
    )


def test_scores_are_in_the_fused_scores_units_so_only_near_ties_are_quoted_together() -> None:
    scorer = SetLogits({"a": 2.0, "b": -3.2, "c": -40.0})
    result = rerank(scorer, "q", TEXTS.__getitem__, FUSED, flat, RerankPolicy(depth=3, fused_weight=32.0))
    assert result.order.tolist() == [0, 1, 2, 3, 4]
    # fused + logit / 32: a 0.9625, b 0.7, c 0.7 - 1.25 kept at 0; d and e were never read.
    assert result.scores.tolist() == pytest.approx([0.9625, 0.7, 0.0, 0.0, 0.0])
    # b is not within 90% of a, so an answer would quote a alone (the sigmoid of the ordering gave every
    # reread sentence about 1.0, and every one of them was quoted).
    assert result.scores[1] < 0.9 * result.scores[0]


def test_candidates_are_read_with_the_sentence_before_them_in_their_own_document_only(seed_index: Index) -> None:
    from qa.verify.rerank import candidate_reading, previous_sentence, scorer_context

    sentences = seed_index.sentences
    assert previous_sentence(sentences, 0) is None
    assert previous_sentence(sentences, 5) == sentences[4].text
    rows = np.asarray([5, 0])
    assert candidate_reading(sentences, rows, "none")(0) == sentences[5].text
    assert candidate_reading(sentences, rows, "previous")(0) == f"{sentences[5].text} [SEP] {sentences[4].text}"
    assert candidate_reading(sentences, rows, "previous")(1) == sentences[0].text
    assert scorer_context(SetLogits({})) == "none"


def test_a_scorer_that_reads_context_is_given_it_through_the_search(seed_index: Index) -> None:
    from qa.search.ranking import search

    class WithContext:
        context = "previous"

        def __init__(self) -> None:
            self.asked: list[str] = []

        def logits(self, questions: list[str], sentences: list[str]) -> np.ndarray:
            self.asked += sentences
            return np.zeros(len(sentences), dtype=np.float32)

    scorer = WithContext()
    found = search(seed_index, "Who chairs the Senate Judiciary Committee?", k=3, verifier=scorer)
    assert len(scorer.asked) == RerankPolicy().depth
    by_text = {s.text: row for row, s in enumerate(seed_index.sentences)}
    for side in scorer.asked:
        sentence, _, previous = side.partition(" [SEP] ")
        row = by_text[sentence]
        assert previous == (seed_index.sentences[row - 1].text if row else "")
    # The quotes themselves are still the sentences alone.
    assert all(" [SEP] " not in hit.text for hit in found.hits)


def test_the_policy_was_fitted_for_the_shipped_model() -> None:
    shipped = (MODEL_DIR / CHECKSUM_FILE).read_text(encoding="utf-8").split()[0]
    assert shipped == FITTED_FOR, "the verifier changed: refit its use (calibrate_verifier) and update RerankPolicy"
