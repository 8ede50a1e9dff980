"""BM25 over sentences: scores, unknown words, IDF and coverage."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from qa.storage.lexical import LexicalIndex, tokenize

TEXTS = [
    "Fentanyl is shipped from China through the mail.",
    "Heroin and fentanyl cross the southern border.",
    "The committee met on Tuesday.",
]


def test_tokenize_lowercases_stems_and_drops_stopwords() -> None:
    [tokens] = tokenize(["The Chemists were SHIPPING drugs"])
    assert "the" not in tokens
    assert "chemist" in tokens and "ship" in tokens and "drug" in tokens


def test_irregular_forms_meet_their_lemma() -> None:
    assert tokenize(["witnesses said", "witness says"]) == [["wit", "say"], ["wit", "say"]]
    assert tokenize(["cartels bought"])[0] == tokenize(["cartel buys"])[0]


def test_question_words_are_stopwords() -> None:
    assert tokenize(["Who does Grassley lead, and which committee?"])[0] == ["grassley", "lead", "committe"]


def test_scores_favour_the_texts_holding_the_rare_query_words() -> None:
    index = LexicalIndex(TEXTS)
    scores = index.scores(tokenize(["fentanyl mail"])[0])
    assert scores.shape == (3,)
    assert scores[0] > scores[1] > 0 and scores[2] == 0


def test_unknown_words_score_zero_everywhere() -> None:
    index = LexicalIndex(TEXTS)
    np.testing.assert_array_equal(index.scores(tokenize(["xylophone"])[0]), np.zeros(3))
    np.testing.assert_array_equal(index.scores([]), np.zeros(3))


def test_idf_weighs_rare_and_unseen_words_more() -> None:
    index = LexicalIndex(TEXTS)
    fentanyl, mail, unseen = (tokenize([word])[0][0] for word in ("fentanyl", "mail", "xylophone"))
    assert index.idf(unseen) > index.idf(mail) > index.idf(fentanyl) > 0


def test_coverage_is_the_share_of_query_idf_present() -> None:
    index = LexicalIndex(TEXTS)
    query = tokenize(["fentanyl mail"])[0]
    weights = {token: index.idf(token) for token in query}
    [fentanyl] = tokenize(["fentanyl"])[0]
    assert index.coverage(query, set(query)) == pytest.approx(1.0)
    assert index.coverage(query, {fentanyl}) == pytest.approx(weights[fentanyl] / sum(weights.values()))
    assert index.coverage(query, set()) == 0.0
    assert index.coverage([], {fentanyl}) == 0.0


def test_empty_index_scores_nothing() -> None:
    index = LexicalIndex([])
    assert index.scores(["fentanyl"]).shape == (0,)


def test_saved_bm25_maps_back_with_the_same_scores(tmp_path: Path) -> None:
    index = LexicalIndex(TEXTS)
    index.save(tmp_path)
    loaded = LexicalIndex.load(tmp_path)
    query = tokenize(["fentanyl mail border"])[0]
    np.testing.assert_allclose(loaded.scores(query), index.scores(query))
    assert loaded.idf(query[0]) == index.idf(query[0]) and loaded.size == 3


def test_coverages_of_rows_use_this_index_idf_and_the_holder_texts() -> None:
    sentences = LexicalIndex(TEXTS)
    paragraphs = LexicalIndex(["Fentanyl arrives by mail from China.", "The committee met."])
    query = tokenize(["fentanyl mail committee"])[0]
    weights = {token: sentences.idf(token) for token in query}
    total = sum(weights.values())
    expected = [
        sentences.coverage(query, set(tokenize([TEXTS[0]])[0])),
        sentences.coverage(query, set(tokenize([TEXTS[2]])[0])),
    ]
    np.testing.assert_allclose(sentences.coverages(query, np.asarray([0, 2])), expected, rtol=1e-6)
    covered = sentences.coverages(query, np.asarray([0, 1]), holder=paragraphs)
    committee = tokenize(["committee"])[0][0]
    assert covered[1] == pytest.approx(weights[committee] / total)
    assert sentences.coverages([], np.asarray([0])).tolist() == [0.0]


def test_an_empty_index_saves_and_loads(tmp_path: Path) -> None:
    LexicalIndex([]).save(tmp_path)
    assert LexicalIndex.load(tmp_path).scores(["fentanyl"]).shape == (0,)
