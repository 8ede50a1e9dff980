"""`qa.measure.verifier_speed`'s interleaved comparison, on the seed index with the shipped verifier.

Only the shape and the arithmetic are checked: times are never asserted in tests.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from qa.errors import VerifierError
from qa.measure import verifier_speed
from qa.reader.index import Index
from qa.verify.scorer import MODEL_DIR, Verifier

QUESTIONS = ["Who is Kirsten Madison?", "What does Derek Scissors think of sanctions?", "Where is the hearing?"]


def test_each_question_is_timed_three_ways_and_the_added_time_is_paired(seed_index: Index) -> None:
    verifiers = {threads: Verifier(MODEL_DIR, threads=threads) for threads in (1, 2)}
    figures = verifier_speed.compare(seed_index, QUESTIONS, verifier_speed.ways(verifiers))
    assert (figures["sentences"], figures["questions"]) == (len(seed_index.sentences), 3)
    assert figures[verifier_speed.WAYS[0]]["median_added_ms"] == 0.0  # the fusion against itself
    assert [way for way in figures if way not in ("sentences", "questions")] == list(verifier_speed.WAYS)
    for way in verifier_speed.WAYS:
        assert 0.0 < figures[way]["p50_ms"] <= figures[way]["p95_ms"]


def test_each_turn_takes_the_ways_in_its_own_seeded_order_so_no_way_always_follows_the_same_one() -> None:
    ways = [*verifier_speed.WAYS, "candidate, 2 threads"]
    orders = [verifier_speed.turn_order(ways, number) for number in range(200)]
    assert orders == [verifier_speed.turn_order(ways, number) for number in range(200)]  # reproducible
    assert all(sorted(order) == sorted(ways) for order in orders)  # every way once a turn
    followed = {(order[i - 1], order[i]) for order in orders for i in range(1, len(order))}
    assert followed == {(a, b) for a in ways for b in ways if a != b}
    assert {order[0] for order in orders} == set(ways)


class CountingVerifier(Verifier):
    """The shipped model, counting the rereads it is asked for."""

    calls = 0

    def logits(self, questions: list[str], sentences: list[str]) -> np.ndarray:
        self.calls += 1
        return super().logits(questions, sentences)


def test_another_verifier_is_timed_in_the_same_turns(seed_index: Index) -> None:
    verifiers = {threads: Verifier(MODEL_DIR, threads=threads) for threads in (1, 2)}
    candidate = CountingVerifier(MODEL_DIR, threads=2)
    figures = verifier_speed.compare(seed_index, QUESTIONS, verifier_speed.ways(verifiers, {"candidate": candidate}))
    assert [way for way in figures if way not in ("sentences", "questions")] == [
        *verifier_speed.WAYS,
        "candidate, 2 threads",
    ]
    assert candidate.calls == 1 + len(QUESTIONS)  # the warm-up answer, then each question once: it really answered
    assert 0.0 < figures["candidate, 2 threads"]["p50_ms"] <= figures["candidate, 2 threads"]["p95_ms"]


def test_a_folder_without_a_verifier_is_refused_before_any_indexing(tmp_path: Path) -> None:
    work = tmp_path / "work"
    argv = [str(tmp_path / "squad.json"), "--work", str(work), "--other", str(tmp_path / "no-model")]
    with pytest.raises(VerifierError, match="no-model"):
        verifier_speed.main(argv)
    assert not work.exists()
