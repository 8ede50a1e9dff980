"""What each embedded text kind is worth: word windows and paragraph vectors, measured on SQuAD.

    python -m qa.measure.ablate_build ../shared/data/squad-v1.1-dev.json --work .cache/squad

A build embeds each sentence and each paragraph; a long sentence's twelve-word
windows get vectors too, embedded as texts of their own for sentences of more
than LONG_SENTENCE_WORDS words and pooled from the sentence's own token
vectors for the others (qa/indexing.py). This tool builds (or reuses) the
SQuAD index of `qa.measure.calibrate` and scores variants on the same
questions:

- as built;
- all windows pooled: the long sentences' windows pooled too (no window is embedded);
- no windows: the window signal is the sentence's own cosine;
- mean paragraphs: each paragraph's vector is the normalised mean of its
  sentences' vectors, so no paragraph text is embedded.

For each, the fusion weights and the answer confidence are refitted on the
even-numbered articles exactly as `qa.measure.calibrate` fits them, and the
choice between variants is made on those articles alone. The odd-numbered
(held-out) articles are scored with the fitted weights, for the record.
(Before windows were pooled, every window was embedded; commit 75f0801 holds
this tool as it measured that build.)
"""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path

import numpy as np

from qa.embed.documents import LONG_SENTENCE_WORDS
from qa.measure.calibrate import (
    Sample,
    abstention_rates,
    collect,
    confidence_data,
    evaluate,
    fit_confidence,
    search_weights,
    squad_splits,
)
from qa.reader.index import Index
from qa.search.candidates import Candidates
from qa.split import word_windows
from qa.storage.vectors import FaissStore
from qa.storage.windows import WindowVectors


def without_windows(samples: list[Sample]) -> list[Sample]:
    """The samples with the window signal replaced by the sentence's own cosine."""

    def strip(found: Candidates) -> Candidates:
        return dataclasses.replace(found, dense_window=found.dense)

    return [
        dataclasses.replace(s, found=strip(s.found), hidden=strip(s.hidden) if s.hidden is not None else None)
        for s in samples
    ]


def mean_passage_store(index: Index) -> FaissStore:
    """A passage store whose vectors are the normalised means of each paragraph's sentence vectors."""
    sentence_vectors = index.sentence_store.vectors(index.sentence_keys)
    sums = np.zeros((len(index.passages), sentence_vectors.shape[1]), dtype=np.float32)
    np.add.at(sums, index.sentence_passage_rows, sentence_vectors)
    sums /= np.maximum(np.linalg.norm(sums, axis=1, keepdims=True), 1e-12)
    store = FaissStore(sentence_vectors.shape[1])
    store.add(index.passage_keys, sums)
    return store


def all_pooled(index: Index) -> WindowVectors:
    """The index's window vectors with every long sentence's windows pooled like the others'."""
    texts = list(index.tables.sentence_texts())
    long_rows = [row for row, text in enumerate(texts) if len(text.split()) > LONG_SENTENCE_WORDS]
    spans = [word_windows(texts[row], 0, len(texts[row])) for row in long_rows]
    _, pooled = index.encoder.encode_with_spans([texts[row] for row in long_rows], spans)
    vectors, bounds = index.windows.in_row_order()
    targets = [
        bounds[row] + number
        for row, row_spans in zip(long_rows, spans, strict=True)
        for number in range(len(row_spans))
    ]
    vectors[targets] = pooled.astype(np.float16)
    return WindowVectors(vectors, index.windows.counts)


def score(index: Index, fitting: list[Sample], held_out: list[Sample], name: str) -> None:
    """Refit weights and confidence on `fitting`; print both splits' figures and abstention."""
    weights = search_weights(fitting)
    fit_metrics = evaluate(fitting, {name: weights})[name]
    held_metrics = evaluate(held_out, {name: weights})[name]
    model = fit_confidence(*confidence_data(index, fitting, weights))
    fit_rates = abstention_rates(*confidence_data(index, fitting, weights), model)
    held_rates = abstention_rates(*confidence_data(index, held_out, weights), model)
    print(f"{name}: weights {weights}")
    print(f"  confidence {model}")
    for split, metrics, rates in (
        ("even (chosen on)", fit_metrics, fit_rates),
        ("odd (held out)", held_metrics, held_rates),
    ):
        figures = "  ".join(f"{k} {v:.3f}" for k, v in metrics.items())
        abstain = "  ".join(f"{k} {v:.3f}" for k, v in rates.items())
        print(f"  {split:17s} {figures}  {abstain}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m qa.measure.ablate_build", description=__doc__.split("\n")[0])
    parser.add_argument("squad", type=Path, help="SQuAD v1.1 JSON file")
    parser.add_argument("--work", type=Path, default=Path(".cache/squad"), help="where the corpus and index go")
    parser.add_argument("--limit", type=int, default=1000, help="questions per split")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    index, fitting, held_out = squad_splits(args.squad, args.work, args.limit, args.seed)

    built = (collect(index, fitting), collect(index, held_out))
    score(index, *built, "as built")
    score(index, without_windows(built[0]), without_windows(built[1]), "no windows")
    as_built = index.windows
    index.windows = all_pooled(index)
    try:
        score(index, collect(index, fitting), collect(index, held_out), "all windows pooled")
    finally:
        index.windows = as_built
    embedded = index.passage_store
    index.passage_store = index.stores["passages"] = mean_passage_store(index)
    try:
        score(index, collect(index, fitting), collect(index, held_out), "mean paragraphs")
    finally:
        index.passage_store = index.stores["passages"] = embedded
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
