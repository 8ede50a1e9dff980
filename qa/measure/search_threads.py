"""A warm answer with FAISS searching on one OpenMP thread and on two, quiet and beside busy processes.

    python -m qa.measure.search_threads ../shared/data/squad-v1.1-dev.json [--work .cache/squad] [--questions 200] [--busy 0,2]

At seed scale (the index in QA_INDEX or index/) and at SQuAD scale (the
48-article index `qa eval` caches in `--work`), the same SQuAD dev questions
(the first `--questions` after a seed-0 shuffle, as `qa bench` asks them) are
answered one at a time, the verifier on as by default, with FAISS's question
search on one thread and on two in turn, question by question, so both ways
share the machine's load. Each `--busy` count is a run with that many
processes spinning on the cores meanwhile, as on a shared machine or a server
answering several people at once. qa searches on one (qa/storage/vectors.py).
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import sys
from pathlib import Path

import numpy as np

from qa.config import Settings
from qa.measure.bench import percentile, question_texts
from qa.measure.datasets import load_squad, sample
from qa.measure.verifier_speed import timed_answer
from qa.reader.index import Index
from qa.storage import vectors
from qa.verify.scorer import Verifier

THREADS = (1, 2)


def _spin() -> None:  # pragma: no cover - runs in a child process until terminated
    while True:
        pass


def compare(index: Index, questions: list[str], verifier: Verifier | None) -> dict:
    """Each question answered with FAISS on each thread count in turn; p50, p95 and the paired median difference."""
    timed_answer(index, questions[0], verifier)  # caches and sessions loaded: not part of a warm answer
    times: dict[int, list[float]] = {threads: [] for threads in THREADS}
    saved = vectors.SEARCH_THREADS
    try:
        for question in questions:
            for threads in THREADS:
                vectors.SEARCH_THREADS = threads
                times[threads].append(timed_answer(index, question, verifier))
    finally:
        vectors.SEARCH_THREADS = saved
    one = np.asarray(times[1])
    figures: dict = {"sentences": len(index.sentences), "questions": len(questions)}
    for threads, values in times.items():
        figures[f"FAISS on {threads} thread{'s' if threads > 1 else ''}"] = {
            "p50_ms": round(percentile(values, 0.5), 2),
            "p95_ms": round(percentile(values, 0.95), 2),
            "median_over_one_ms": round(float(np.median(np.asarray(values) - one)), 2),
        }
    return figures


def busy_counts(text: str) -> list[int]:
    try:
        counts = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"--busy takes whole numbers separated by commas, not {text!r}") from None
    if not counts or min(counts) < 0:
        raise argparse.ArgumentTypeError(f"--busy takes counts of at least 0, not {text!r}")
    return counts


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m qa.measure.search_threads", description=__doc__.split("\n")[0])
    parser.add_argument("squad", type=Path, help="SQuAD v1.1 dev .json: the questions, and the SQuAD-scale corpus")
    parser.add_argument("--work", type=Path, default=Path(".cache/squad"), help="where qa eval cached its SQuAD index")
    parser.add_argument("--questions", type=int, default=200, help="questions timed at each scale (default 200)")
    parser.add_argument(
        "--busy", type=busy_counts, default=[0, 2], help="spinning processes beside each run (default 0,2)"
    )
    args = parser.parse_args(argv)

    import qa
    from qa.api import verifier as default_verifier
    from qa.measure.evaluate import prepare

    settings = Settings.from_env()
    verifier = default_verifier()
    _, squad_questions = load_squad(args.squad)
    asked = question_texts(sample(squad_questions, args.questions, seed=0), args.questions)
    indexes = {
        "seed scale": qa.load_index(settings.index_dir),
        "SQuAD scale": prepare(args.squad, settings, args.work)[0],
    }
    figures: dict = {"verifier": "off" if verifier is None else "on"}
    for busy in args.busy:
        spinners = [multiprocessing.Process(target=_spin, daemon=True) for _ in range(busy)]
        for spinner in spinners:
            spinner.start()
        try:
            figures[f"{busy} busy processes"] = {
                name: compare(index, asked, verifier) for name, index in indexes.items()
            }
        finally:
            for spinner in spinners:
                spinner.terminate()
                spinner.join()
    print(json.dumps(figures, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
