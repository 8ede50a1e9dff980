"""Retrieval: the dev set's quality bar on the real seed, hit records, and the pure scoring parts."""

from __future__ import annotations

import dataclasses
import itertools
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from conftest import SEEDS

import qa
from qa.reader.index import Index
from qa.records import Citation, Hit
from qa.search.confidence import ConfidenceModel, confidence
from qa.search.fusion import FusionWeights, fuse
from qa.search.lexical_hits import top_rows
from qa.search.question import prepare_question

DevResults = dict[str, tuple[list[Hit], qa.Answer]]


def answerable(dev_set: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [row for row in dev_set if row["answerable"]]


def gold_ranks(dev_set: list[dict[str, Any]], dev_results: DevResults) -> dict[str, int | None]:
    """1-based rank of the first top-3 hit holding the gold answer, per answerable question."""
    ranks: dict[str, int | None] = {}
    for row in answerable(dev_set):
        hits, _ = dev_results[row["id"]]
        found = [rank for rank, hit in enumerate(hits, start=1) if row["answer"].lower() in hit.text.lower()]
        ranks[row["id"]] = found[0] if found else None
    return ranks


# --- the quality bar on the dev set ---------------------------------------------------


def test_dev_gold_answer_is_in_the_top_three(dev_set: list[dict[str, Any]], dev_results: DevResults) -> None:
    ranks = gold_ranks(dev_set, dev_results)
    assert len(ranks) == 12
    assert all(len(dev_results[name][0]) == 3 for name in ranks)
    missing = {name: dev_results[name][0][0].text[:60] for name, rank in ranks.items() if rank is None}
    assert not missing, f"gold answer not in the top 3 for {missing}"


def test_dev_gold_answer_is_first_for_all_but_one(dev_set: list[dict[str, Any]], dev_results: DevResults) -> None:
    ranks = gold_ranks(dev_set, dev_results)
    first = sum(1 for rank in ranks.values() if rank == 1)
    assert first >= len(ranks) - 1, f"gold answer first for {first}/{len(ranks)}: ranks {ranks}"


def test_dev_hits_quote_their_source_exactly(dev_results: DevResults) -> None:
    checked = 0
    for hits, answer in dev_results.values():
        for hit in [*hits, *answer.related]:
            source_text = Path(SEEDS, hit.source).read_text(encoding="utf-8")
            assert source_text[hit.start : hit.end] == hit.text
            assert hit.context[hit.start - hit.context_start : hit.end - hit.context_start] == hit.text
            assert source_text[hit.context_start : hit.context_start + len(hit.context)] == hit.context
            assert source_text.count("\n", 0, hit.start) + 1 == hit.line
            checked += 1
    assert checked >= 3 * len(dev_results)


def test_dev_hits_carry_their_ranks_and_scores(dev_results: DevResults) -> None:
    all_hits = [hit for hits, _ in dev_results.values() for hit in hits]
    for hit in all_hits:
        for rank in (hit.dense_rank, hit.lexical_rank, hit.passage_rank):
            assert rank is None or (isinstance(rank, int) and rank >= 1)
        assert isinstance(hit.score, float) and isinstance(hit.dense_score, float)
        assert -1.0 <= hit.dense_score <= 1.0
        assert hit.lexical_score >= 0.0
    # Not vacuous: both retrievers do rank the hits they return.
    assert any(isinstance(hit.dense_rank, int) for hit in all_hits)
    assert any(isinstance(hit.lexical_rank, int) for hit in all_hits)
    for hits, _ in dev_results.values():
        assert [hit.score for hit in hits] == sorted((hit.score for hit in hits), reverse=True)
        assert len({hit.id for hit in hits}) == len(hits)


# --- retrieve() on the real seed --------------------------------------------------------


def test_retrieve_returns_k_hits_best_first(seed_index: Index) -> None:
    hits = qa.retrieve("How much profit does a fentanyl investment yield?", k=5, index=seed_index)
    assert len(hits) == 5
    assert "$1.5 million profit" in hits[0].text
    assert len(qa.retrieve("fentanyl", k=1000, index=seed_index)) == len(seed_index.sentences)


def test_hit_to_dict_is_json_with_a_citation(seed_index: Index) -> None:
    [hit] = qa.retrieve("Who is Paul Knierim?", k=1, index=seed_index)
    data = json.loads(json.dumps(hit.to_dict()))
    assert data["citation"] == hit.citation
    assert data["text"] == hit.text
    # The Citation's fields stand inline, as they did before hits held a Citation.
    inline = {field.name for field in dataclasses.fields(Citation)}
    assert ({field.name for field in dataclasses.fields(Hit)} - {"location"}) | inline <= set(data)
    assert "location" not in data and {name: data[name] for name in inline} == hit.location.to_dict()


@pytest.mark.parametrize("k", [0, -1, 2.5, "3"])
def test_retrieve_rejects_a_bad_k(seed_index: Index, k: Any) -> None:
    with pytest.raises(qa.BadQuestionError, match="k must"):
        qa.retrieve("Who is Paul Knierim?", k=k, index=seed_index)


@pytest.mark.parametrize(
    ("question", "message"),
    [("", "empty"), ("   \n\t", "empty"), ("\x00\x07", "empty"), ("?!?", "no words"), (None, "text"), (b"who", "text")],
)
def test_retrieve_rejects_a_bad_question(seed_index: Index, question: Any, message: str) -> None:
    with pytest.raises(qa.BadQuestionError, match=message):
        qa.retrieve(question, index=seed_index)


# --- pure functions --------------------------------------------------------------------


def test_prepare_question_replaces_control_characters_and_trims() -> None:
    assert prepare_question("\x00 Who\x00is\tPaul\x1bKnierim? \n") == ("Who is Paul Knierim?", [])


def test_prepare_question_shortens_a_long_question_and_says_so() -> None:
    cleaned, notes = prepare_question("word " * 20_000)
    assert 0 < len(cleaned) < 20_000
    assert "word word" in cleaned
    assert len(notes) == 1 and "100,000 characters" in notes[0]


@pytest.mark.parametrize(
    ("question", "message"),
    [
        ("", "empty"),
        (" \u3000 ", "empty"),
        ("\x00\x01\x02", "empty"),
        ("?!? — …", "no words"),
        (42, "text"),
        ("who chairs \udcff the committee", r"lone surrogate, U\+DCFF"),
    ],
)
def test_prepare_question_rejects(question: Any, message: str) -> None:
    with pytest.raises(qa.BadQuestionError, match=message):
        prepare_question(question)


def test_top_rows_keeps_the_best_positive_rows_best_first() -> None:
    scores = np.array([0.0, 3.0, 1.0, 5.0, -1.0, 2.0])
    assert top_rows(scores, 3).tolist() == [3, 1, 5]
    assert top_rows(scores, 10).tolist() == [3, 1, 5, 2]  # never zero or negative rows
    assert top_rows(scores, 1).tolist() == [3]
    assert top_rows(np.zeros(4), 2).tolist() == []


def test_fuse_is_the_weighted_sum_of_its_signals() -> None:
    names = [field.name for field in dataclasses.fields(FusionWeights)]
    rng = np.random.default_rng(7)
    signals = {name: rng.random(4) for name in names}
    for name in names:  # each weight scales exactly its own signal
        only = FusionWeights(**{other: float(other == name) for other in names})
        np.testing.assert_allclose(fuse(**signals, weights=only), signals[name])
    mixed = FusionWeights(**{name: 0.1 * (number + 1) for number, name in enumerate(names)})
    expected = sum(0.1 * (number + 1) * signals[name] for number, name in enumerate(names))
    np.testing.assert_allclose(fuse(**signals, weights=mixed), expected)


def test_confidence_is_a_probability_rising_with_every_feature() -> None:
    values = (0.0, 0.3, 0.6, 0.9)
    for features in itertools.product(values, repeat=3):
        value = confidence(features)
        assert 0.0 <= value <= 1.0
        for position in range(3):
            higher = tuple(f + 0.1 if number == position else f for number, f in enumerate(features))
            assert confidence(higher) > value
    assert confidence((0.0, 0.0, 0.0)) < 0.5 < confidence((1.0, 1.0, 1.0))


def test_confidence_model_is_the_logistic_of_its_weighted_features() -> None:
    model = ConfidenceModel(intercept=-1.0, window_cosine=2.0, paragraph_coverage=3.0, fused_score=4.0)
    features = np.asarray([[0.5, 0.0, 0.0], [0.0, 0.0, 0.25], [0.1, 0.2, 0.3]])
    logits = np.asarray([0.0, 0.0, -1.0 + 0.2 + 0.6 + 1.2])
    np.testing.assert_allclose(model.probability(features), 1 / (1 + np.exp(-logits)))
    assert confidence((0.5, 0.0, 0.0), model) == pytest.approx(0.5)
