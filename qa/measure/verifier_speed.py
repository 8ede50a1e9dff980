"""What the answer verifier adds to a warm answer, on one and on two threads, in one interleaved run.

    python -m qa.measure.verifier_speed ../shared/data/squad-v1.1-dev.json [--work .cache/squad] [--questions 200] [--other DIR]

At seed scale (the index in QA_INDEX or index/) and at SQuAD scale (the
48-article index `qa eval` caches in `--work`), the same SQuAD dev questions
(the first `--questions` after a seed-0 shuffle, as `qa bench` asks them) are
answered one at a time three ways in turn: the fusion alone (QA_VERIFIER=off),
with the verifier on one onnxruntime thread, and on two. Taking them in turn,
question by question, puts each on the same machine load, so the medians and
the paired differences compare even on shared cores, where absolute times move.
With `--other`, a fourth way joins them in the same turns: another trained
verifier (a `qa.measure.train_verifier --out` folder) on two threads, so that a
candidate's cost is measured against the shipped one's on the same load.

Each turn takes the ways in its own seeded order. In a fixed order a way
always ran right after the same other one, and a way on two threads timed just
after another on two threads was slower by 5-6 ms: a byte-identical copy of the
shipped model, timed as `--other`, added 19.3 ms where the shipped one added
14.1 (2026-12-04, 100 questions at seed scale). Shuffled, every way follows
every other about equally often.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
from pathlib import Path

import numpy as np

from qa.config import Settings
from qa.measure.bench import percentile, question_texts
from qa.measure.datasets import load_squad, sample
from qa.quotes import answer_question
from qa.reader.index import Index
from qa.verify.scorer import MODEL_DIR, Verifier

WAYS = ("fusion alone", "verifier, 1 thread", "verifier, 2 threads")


def timed_answer(index: Index, question: str, scorer: Verifier | None) -> float:
    """Milliseconds one warm answer takes."""
    started = time.perf_counter()
    answer_question(index, question, verifier=scorer)
    return 1000 * (time.perf_counter() - started)


def ways(verifiers: dict[int, Verifier], others: dict[str, Verifier] | None = None) -> dict[str, Verifier | None]:
    """The scorers compared, by name: the fusion alone first (None), the shipped verifier, then any others (2 threads)."""
    scorers: dict[str, Verifier | None] = {WAYS[0]: None, WAYS[1]: verifiers[1], WAYS[2]: verifiers[2]}
    scorers.update({f"{name}, 2 threads": other for name, other in (others or {}).items()})
    return scorers


def turn_order(ways: list[str], number: int) -> list[str]:
    """The order the ways are taken in for question `number`: shuffled, a function of the number only."""
    order = list(ways)
    random.Random(f"turn-{number}").shuffle(order)
    return order


def compare(index: Index, questions: list[str], scorers: dict[str, Verifier | None]) -> dict:
    """Each question answered every way, in a shuffled turn; p50 and p95 of each, and the median extra over the first."""
    for scorer in scorers.values():  # BM25, caches and sessions loaded: not part of a warm answer
        answer_question(index, questions[0], verifier=scorer)
    times: dict[str, list[float]] = {way: [] for way in scorers}
    for number, question in enumerate(questions):
        for way in turn_order(list(scorers), number):
            times[way].append(timed_answer(index, question, scorers[way]))
    alone = np.asarray(next(iter(times.values())))
    figures: dict = {"sentences": len(index.sentences), "questions": len(questions)}
    for way, values in times.items():
        row = np.asarray(values)
        figures[way] = {
            "p50_ms": round(percentile(values, 0.5), 2),
            "p95_ms": round(percentile(values, 0.95), 2),
            "median_added_ms": round(float(np.median(row - alone)), 2),
        }
    return figures


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m qa.measure.verifier_speed", description=__doc__.split("\n")[0])
    parser.add_argument("squad", type=Path, help="SQuAD v1.1 dev .json: the questions, and the SQuAD-scale corpus")
    parser.add_argument("--work", type=Path, default=Path(".cache/squad"), help="where qa eval cached its SQuAD index")
    parser.add_argument("--questions", type=int, default=200, help="questions timed at each scale (default 200)")
    parser.add_argument("--other", type=Path, help="another trained verifier's folder, timed beside the shipped one")
    args = parser.parse_args(argv)

    import qa
    from qa.measure.evaluate import prepare

    settings = Settings.from_env()
    verifiers = {threads: Verifier(MODEL_DIR, threads=threads) for threads in (1, 2)}
    # Loaded before the data and any indexing, so that a wrong --other fails at once.
    others = {args.other.name: Verifier(args.other, threads=2)} if args.other else {}
    scorers = ways(verifiers, others)
    _, squad_questions = load_squad(args.squad)
    asked = question_texts(sample(squad_questions, args.questions, seed=0), args.questions)
    seed_index = qa.load_index(settings.index_dir)
    squad_index, _ = prepare(args.squad, settings, args.work)
    figures = {
        "seed scale": compare(seed_index, asked, scorers),
        "SQuAD scale": compare(squad_index, asked, scorers),
    }
    print(json.dumps(figures, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
