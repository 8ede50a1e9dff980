"""`qa.measure.verifier_speed`'s interleaved comparison, on the seed index with the shipped verifier.

Only the shape and the arithmetic are checked: times are never asserted in tests.
"""

from __future__ import annotations

from qa.measure import verifier_speed
from qa.reader.index import Index
from qa.verify.scorer import MODEL_DIR, Verifier


def test_each_question_is_timed_three_ways_and_the_added_time_is_paired(seed_index: Index) -> None:
    questions = ["Who is Kirsten Madison?", "What does Derek Scissors think of sanctions?", "Where is the hearing?"]
    verifiers = {threads: Verifier(MODEL_DIR, threads=threads) for threads in (1, 2)}
    figures = verifier_speed.compare(seed_index, questions, verifiers)
    assert (figures["sentences"], figures["questions"]) == (len(seed_index.sentences), 3)
    assert figures[verifier_speed.WAYS[0]]["median_added_ms"] == 0.0  # the fusion against itself
    for way in verifier_speed.WAYS:
        assert 0.0 < figures[way]["p50_ms"] <= figures[way]["p95_ms"]
