"""`qa.measure.search_threads`' interleaved comparison, on the seed index with the shipped verifier.

Only the shape and what each way really ran with are checked: times are never asserted in tests.
"""

from __future__ import annotations

import argparse

import faiss
import pytest

from qa.measure import search_threads
from qa.reader.index import Index
from qa.storage import vectors
from qa.verify.scorer import load_verifier

QUESTIONS = ["Who is Kirsten Madison?", "What does Derek Scissors think of sanctions?", "Where is the hearing?"]


def test_each_question_is_timed_with_faiss_on_one_and_two_threads(
    seed_index: Index, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: list[int] = []
    search = vectors.FaissStore.search

    def recording(self: vectors.FaissStore, *args: object, **kwargs: object) -> object:
        with vectors.search_threads():
            seen.append(faiss.omp_get_max_threads())
        return search(self, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(vectors.FaissStore, "search", recording)
    figures = search_threads.compare(seed_index, QUESTIONS, load_verifier())
    assert (figures["sentences"], figures["questions"]) == (len(seed_index.sentences), 3)
    assert [way for way in figures if way not in ("sentences", "questions")] == [
        "FAISS on 1 thread",
        "FAISS on 2 threads",
    ]
    assert figures["FAISS on 1 thread"]["median_over_one_ms"] == 0.0  # one thread against itself
    for way in ("FAISS on 1 thread", "FAISS on 2 threads"):
        assert 0.0 < figures[way]["p50_ms"] <= figures[way]["p95_ms"]
    # Two dense searches per answer (sentences, paragraphs): the warm-up on the default, then each way in turn.
    assert seen == [1, 1] + [1, 1, 2, 2] * len(QUESTIONS)
    assert vectors.SEARCH_THREADS == 1  # restored


def test_busy_counts_are_whole_numbers_of_at_least_zero() -> None:
    assert search_threads.busy_counts("0,2") == [0, 2]
    for bad in ("", "two", "-1", "1,,x"):
        with pytest.raises(argparse.ArgumentTypeError, match="--busy"):
            search_threads.busy_counts(bad)
