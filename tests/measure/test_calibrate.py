"""The calibration's pure parts: RRF and the weight search."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from qa.measure.calibrate import Sample, ranking, search_weights
from qa.measure.datasets import EvalQuestion
from qa.measure.evaluate import rank_metrics
from qa.search.candidates import Candidates
from qa.search.fusion import fused_scores, reciprocal_rank_fusion


def candidates(rows: list[int], dense_ranking: list[int], lexical_ranking: list[int], **signals: list[float]) -> Candidates:
    size = len(rows)
    fields = {f.name: np.zeros(size, dtype=np.float32) for f in dataclasses.fields(Candidates)}
    fields.update(
        rows=np.asarray(rows),
        passage_rows=np.zeros(size, dtype=np.int64),
        dense_ranking=np.asarray(dense_ranking),
        lexical_ranking=np.asarray(lexical_ranking),
    )
    fields.update({name: np.asarray(values, dtype=np.float32) for name, values in signals.items()})
    return Candidates(**fields)


def test_reciprocal_rank_fusion_adds_one_over_k_plus_rank() -> None:
    found = candidates([10, 11, 12], dense_ranking=[11, 10], lexical_ranking=[10, 12])
    np.testing.assert_allclose(
        reciprocal_rank_fusion(found), [1 / 62 + 1 / 61, 1 / 61, 1 / 62]
    )


def test_search_weights_finds_the_signal_that_ranks_the_answer_first() -> None:
    question = EvalQuestion("q", "?", ("x",), "doc.txt")
    samples = []
    for shift in (0.0, 0.1, 0.2):
        # Only paragraph BM25 puts the relevant sentence (position 1) on top;
        # every other signal prefers position 0.
        found = candidates(
            [0, 1],
            [0, 1],
            [0, 1],
            dense=[0.9, 0.1 + shift],
            lexical=[1.0, 0.2],
            passage_dense=[0.8, 0.3],
            passage_lexical=[0.1, 1.0],
            coverage=[1.0, 0.5],
            dense_window=[0.9, 0.2],
        )
        samples.append(Sample(question, found, np.asarray([False, True]), [], None))
    weights = search_weights(samples, step=0.25)
    assert weights.lexical_passage > 0  # without it nothing ranks the answer first
    assert sum(dataclasses.asdict(weights).values()) == pytest.approx(1.0)
    assert rank_metrics([ranking(sample, fused_scores(sample.found, weights)) for sample in samples])["mrr@10"] == 1.0
