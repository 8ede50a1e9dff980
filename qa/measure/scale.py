"""`python -m qa bench SQUAD --scale N`: build and serve an index of N sentences here, and measure it.

How the corpus is made: the SQuAD dev corpus (48 articles, 10,319 sentences)
is copied into as many folders as it takes to reach N sentences; each copy's
files get blank lines of their own, so their bytes differ while their
sentences stay real text. Embedding a million sentences would take hours and
measure the model, not the index, so the build's encoder gives each text the
vector the real model gave it in a SQuAD build, plus Gaussian noise
(NOISE per component, then normalised to unit length, cosine about 0.93 to
the original), drawn afresh for every occurrence. Approximate search is
therefore never handed exact duplicates. Questions are embedded by the real
model.

Each phase runs in a fresh interpreter, so its peak memory (the kernel's
VmHWM) is its own:

- build: a full build of the N-sentence corpus (time, peak RSS, size on disk);
- serve: load the index, then answer questions one at a time, warm (load
  time, p50/p95 of `answer()` and of the search step alone, which is
  candidates and fusion without any reranker, peak RSS);
- recall: the approximate sentence search's top 50 against exact search over
  the same vectors as the build made them, on a sample of questions;
- add: an incremental build adding one real document with the real model,
  once from a fresh `qa build` process and once in a process whose model is
  loaded (as a running app's is).
"""

from __future__ import annotations

import argparse
import json
import math
import random
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from qa.embed.encoder import Encoder, normalize
from qa.measure.datasets import load_squad, write_corpus
from qa.measure.processes import package_environment, peak_rss_mb

NOISE = 0.02
SEED = 0
# Noise is drawn in chunks of this many rows, each from its own seed, so that
# the recall phase can draw exactly the vectors the build drew.
_CHUNK = 65_536
Report = Callable[[str], None]


class PerturbedEncoder:
    """The real encoder, except that texts get their SQuAD vector plus fresh noise (see the module doc).

    A build embeds its sentences in chunks, through encode_with_spans; their
    noise is drawn by position in that stream (`sentence_noise_seed`), so the
    recall phase can draw the same vectors again with `perturbed`.
    """

    def __init__(
        self, encoder: Encoder, known: dict[str, np.ndarray], windows: dict[str, np.ndarray], seed: int = SEED
    ) -> None:
        self.encoder = encoder
        self.known = known
        self.known_windows = windows
        self.seed = seed
        self.calls = 0
        self.sentences_seen = 0

    def encode(self, texts: list[str], progress: Any = None) -> np.ndarray:
        self.calls += 1
        vectors = perturbed(texts, self.known, self.seed + 1000 * self.calls + 1)
        if progress is not None and texts:
            progress(len(texts), len(texts))
        return vectors

    def encode_with_spans(
        self, texts: list[str], spans: list[list[tuple[int, int]]], progress: Any = None
    ) -> tuple[np.ndarray, np.ndarray]:
        vectors = perturbed(texts, self.known, sentence_noise_seed(self.seed), first_row=self.sentences_seen)
        if progress is not None and texts:
            progress(len(texts), len(texts))
        counts = [len(self.known_windows[text]) for text in texts]
        windows = np.empty((sum(counts), vectors.shape[1]), dtype=np.float16)
        rng = np.random.default_rng([self.seed, 7, self.sentences_seen])
        self.sentences_seen += len(texts)
        position = 0
        # Small chunks: this stand-in should not add working memory that a real build would not have.
        for first in range(0, len(texts), _CHUNK // 8):
            part = [self.known_windows[text] for text in texts[first : first + _CHUNK // 8]]
            block = np.concatenate([np.zeros((0, vectors.shape[1]), np.float32), *part])
            noise = rng.standard_normal(block.shape, dtype=np.float32)
            windows[position : position + len(block)] = normalize(block + NOISE * noise)
            position += len(block)
        return vectors, windows

    def __getattr__(self, name: str) -> Any:
        return getattr(self.encoder, name)


def sentence_noise_seed(seed: int = SEED) -> int:
    """The seed of the noise a build's sentence vectors get, by their row (see PerturbedEncoder)."""
    return seed + 1000


def perturbed(texts: list[str], known: dict[str, np.ndarray], seed: int, first_row: int = 0) -> np.ndarray:
    """Each text's known vector plus N(0, NOISE^2) per component, unit length.

    Text i's noise is row first_row + i of a stream drawn in chunks of
    _CHUNK rows, each from its own seed: the same rows give the same noise
    however the texts are split into calls.
    """
    dimension = len(next(iter(known.values())))
    out = np.empty((len(texts), dimension), dtype=np.float32)
    row = first_row
    while row < first_row + len(texts):
        chunk, inside = divmod(row, _CHUNK)
        count = min(_CHUNK - inside, first_row + len(texts) - row)
        noise = np.random.default_rng([seed, chunk]).standard_normal((inside + count, dimension), dtype=np.float32)
        part = texts[row - first_row : row - first_row + count]
        out[row - first_row : row - first_row + count] = normalize(
            np.stack([known[text] for text in part]) + NOISE * noise[inside:]
        )
        row += count
    return out


def base_vectors(squad: Path, work: Path, encoder: Encoder) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """Every SQuAD sentence and paragraph text with its real vector, and each sentence's windows' vectors,
    from a SQuAD build kept in `work`."""
    from qa.embed.documents import LONG_SENTENCE_WORDS
    from qa.indexing import build_index
    from qa.measure.bench import known_vectors, known_windows
    from qa.split import word_windows

    documents, _ = load_squad(squad)
    write_corpus(documents, work / "squad-seeds")
    index = build_index(work / "squad-seeds", work / "squad-index", encoder)
    known, windows = known_vectors(index), known_windows(index)
    # A long sentence's windows are embedded as texts (qa/indexing.py): their texts are known too.
    for text, vectors in windows.items():
        if len(text.split()) > LONG_SENTENCE_WORDS:
            spans = word_windows(text, 0, len(text))
            known.update((text[a:b], vector) for (a, b), vector in zip(spans, vectors, strict=True))
    return known, windows


def make_corpus(squad_seeds: Path, seeds: Path, sentences_wanted: int, per_copy: int) -> int:
    """Copies of the SQuAD corpus in `seeds` until they hold at least `sentences_wanted` sentences."""
    from qa.measure.bench import distinct_copy

    copies = max(1, math.ceil(sentences_wanted / per_copy))
    if seeds.exists():
        shutil.rmtree(seeds)
    for number in range(copies):
        distinct_copy(squad_seeds, seeds / f"copy-{number:03d}", number)
    return copies


def folder_mb(path: Path) -> float:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file()) / 1e6


def questions(squad: Path, count: int) -> list[str]:
    _, asked = load_squad(squad)
    random.Random(SEED).shuffle(asked)
    return [q.question for q in asked[:count]]


def _phase_build(args: argparse.Namespace) -> dict[str, Any]:
    from qa.api import get_encoder
    from qa.indexing import build_index
    from qa.reader.index import load_index

    encoder = get_encoder()
    known, windows = base_vectors(args.squad, args.work, encoder)
    squad_sentences = len(load_index(args.work / "squad-index", encoder).sentences)
    copies = make_corpus(args.work / "squad-seeds", args.work / "seeds", args.sentences, squad_sentences)
    index_dir = args.work / "index"
    if index_dir.exists():
        shutil.rmtree(index_dir)
    rss_before = peak_rss_mb()
    started = time.perf_counter()
    index = build_index(args.work / "seeds", index_dir, PerturbedEncoder(encoder, known, windows))  # type: ignore[arg-type]
    seconds = time.perf_counter() - started
    return {
        "copies": copies,
        "sentences": len(index.sentences),
        "passages": len(index.passages),
        "build_s": seconds,
        "build_peak_rss_mb": peak_rss_mb(),
        "rss_before_build_mb": rss_before,
        "disk_mb": folder_mb(index.path),
        "stores": {name: store.kind for name, store in index.stores.items()},
    }


def _timed(call: Callable[[], Any], runs: list[float]) -> None:
    started = time.perf_counter()
    call()
    runs.append(1000 * (time.perf_counter() - started))


def _phase_serve(args: argparse.Namespace) -> dict[str, Any]:
    started = time.perf_counter()
    import qa
    from qa.quotes import answer_question
    from qa.search.candidates import gather_candidates
    from qa.search.fusion import FusionWeights, fused_scores
    from qa.search.question import encode_question

    imported = time.perf_counter()
    index = qa.load_index(args.work / "index")
    loaded = time.perf_counter()
    asked = questions(args.squad, args.questions)
    answer_question(index, asked[0])  # loads the model and the ONNX session: not part of a warm answer
    first = time.perf_counter()

    def search_step(question: str) -> None:
        query, tokens, _ = encode_question(index, question)
        fused_scores(gather_candidates(index, query, tokens, 50), FusionWeights())

    answers: list[float] = []
    searches: list[float] = []
    for question in asked:
        _timed(lambda q=question: answer_question(index, q), answers)  # type: ignore[misc]
        _timed(lambda q=question: search_step(q), searches)  # type: ignore[misc]
    return {
        "import_s": imported - started,
        "load_s": loaded - imported,
        "first_answer_s": first - loaded,
        "answer_p50_ms": float(np.percentile(answers, 50)),
        "answer_p95_ms": float(np.percentile(answers, 95)),
        "search_p50_ms": float(np.percentile(searches, 50)),
        "search_p95_ms": float(np.percentile(searches, 95)),
        "questions": len(asked),
        "serve_peak_rss_mb": peak_rss_mb(),
    }


def _phase_recall(args: argparse.Namespace) -> dict[str, Any]:
    import qa
    from qa.api import get_encoder
    from qa.measure.bench import known_vectors
    from qa.reader.index import load_index
    from qa.search.question import encode_question

    encoder = get_encoder()
    known = known_vectors(load_index(args.work / "squad-index", encoder))
    index = qa.load_index(args.work / "index")
    # The sentence vectors exactly as the build drew them.
    exact = perturbed(list(index.tables.sentence_texts()), known, sentence_noise_seed())
    keys = index.sentence_keys
    depth = min(50, len(keys))
    recalls = []
    for question in questions(args.squad, args.recall_questions):
        query, _, _ = encode_question(index, question)
        truth = keys[np.argsort(-(exact @ query), kind="stable")[:depth]]
        _, found = index.sentence_store.search(query, depth)
        recalls.append(len(set(truth.tolist()) & set(found.tolist())) / depth)
    return {"recall_at_50": statistics.mean(recalls), "recall_min": min(recalls), "recall_questions": len(recalls)}


def _phase_add(args: argparse.Namespace) -> dict[str, Any]:
    """Add one real document twice: from a fresh `qa build` process, and in a process whose model is loaded.

    The fresh process pays for importing the model's libraries and loading
    its weights, which is the same at any index size; the loaded one is what a
    long-running app pays, and what grows with the index.
    """
    from qa.api import get_encoder
    from qa.indexing import build_index

    seeds, index_dir = args.work / "seeds", args.work / "index"
    text = args.document.read_text(encoding="utf-8")
    fresh = seeds / "added-by-a-fresh-process.txt"
    fresh.write_text(text, encoding="utf-8")
    command = [sys.executable, "-m", "qa", "build", "--seeds", str(seeds), "--index", str(index_dir)]
    try:
        started = time.perf_counter()
        subprocess.run(command, check=True, capture_output=True, env=package_environment())
        fresh_seconds = time.perf_counter() - started
    finally:
        fresh.unlink()
    encoder = get_encoder()
    encoder.encode(["The model is loaded before the clock starts."])
    added = seeds / "added.txt"
    # Other bytes than the first copy's, so that it is a new document, not a duplicate.
    added.write_text(text + "\n", encoding="utf-8")
    try:
        started = time.perf_counter()
        index = build_index(seeds, index_dir, encoder)
        seconds = time.perf_counter() - started
    finally:
        added.unlink()
    assert index.report is not None
    return {
        "add_s": seconds,
        "add_fresh_process_s": fresh_seconds,
        "add_embedded_sentences": index.report.embedded_sentences,
        "add_peak_rss_mb": peak_rss_mb(),
    }


PHASES = {"build": _phase_build, "serve": _phase_serve, "recall": _phase_recall, "add": _phase_add}


@dataclass
class ScaleResults:
    """Everything one `--scale` run measured."""

    target: int
    build: dict[str, Any]
    serve: dict[str, Any]
    recall: dict[str, Any]
    add: dict[str, Any]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def run_phase(
    phase: str, squad: Path, work: Path, sentences: int, document: Path, questions_count: int
) -> dict[str, Any]:
    """One phase in a fresh interpreter; its JSON result."""
    command = [sys.executable, "-m", "qa.measure.scale", phase, str(squad), "--work", str(work)]
    command += ["--sentences", str(sentences), "--document", str(document), "--questions", str(questions_count)]
    output = subprocess.run(command, capture_output=True, text=True, env=package_environment())
    if output.returncode != 0:
        raise RuntimeError(f"scale phase {phase} failed:\n{output.stderr[-4000:]}")
    return dict(json.loads(output.stdout.strip().splitlines()[-1]))


def measure(
    squad: Path, work: Path, sentences: int, document: Path, questions_count: int, report: Report
) -> ScaleResults:
    """Run the four phases in order (build, serve, recall, add); each reports as it ends."""
    work.mkdir(parents=True, exist_ok=True)
    results: dict[str, dict[str, Any]] = {}
    for phase in PHASES:
        results[phase] = run_phase(phase, squad, work, sentences, document, questions_count)
        report(f"scale {phase}: " + ", ".join(f"{k} {_show(v)}" for k, v in results[phase].items()))
    return ScaleResults(sentences, **results)


def _show(value: Any) -> str:
    return f"{value:.3f}" if isinstance(value, float) else str(value)


def _lines(results: ScaleResults) -> Iterator[str]:
    b, s, r, a = results.build, results.serve, results.recall, results.add

    def met(ok: bool) -> str:
        return "met" if ok else "**missed**"

    yield f"Corpus: {b['copies']} copies of the SQuAD dev corpus, {b['sentences']:,} sentences and {b['passages']:,} paragraphs;"
    yield f"vectors from the real model plus noise ({NOISE} per component, module doc of `qa/measure/scale.py`)."
    yield f"Stores: {', '.join(f'{name} {kind}' for name, kind in b['stores'].items())}."
    yield ""
    yield "| at this size | value | target |"
    yield "|---|---|---|"
    yield f"| peak RSS while serving (load, {s['questions']} answers) | {s['serve_peak_rss_mb']:,.0f} MB | ≤ 2,500 MB: {met(s['serve_peak_rss_mb'] <= 2500)} |"
    yield f"| peak RSS while building (full build) | {b['build_peak_rss_mb']:,.0f} MB | ≤ 6,000 MB: {met(b['build_peak_rss_mb'] <= 6000)} |"
    yield f"| full build (vectors given, see above) | {b['build_s']:.0f} s | |"
    yield f"| size on disk | {b['disk_mb']:,.0f} MB | |"
    yield f"| load | {s['load_s']:.1f} s | ≤ 10 s: {met(s['load_s'] <= 10)} |"
    yield f"| first answer after load (loads the model) | {s['first_answer_s']:.1f} s | |"
    yield f"| search step (candidates and fusion), p50 / p95 | {s['search_p50_ms']:.1f} / {s['search_p95_ms']:.1f} ms | p50 ≤ 20 ms: {met(s['search_p50_ms'] <= 20)} |"
    yield f"| warm `answer()`, p50 / p95 | {s['answer_p50_ms']:.1f} / {s['answer_p95_ms']:.1f} ms | |"
    yield f"| recall of the exact top 50 sentences ({r['recall_questions']} questions), mean / worst | {r['recall_at_50']:.3f} / {r['recall_min']:.2f} | ≥ 0.98: {met(r['recall_at_50'] >= 0.98)} |"
    yield f"| adding one document ({a['add_embedded_sentences']} sentences, real model, model loaded) | {a['add_s']:.1f} s | ≤ 5 s: {met(a['add_s'] <= 5)} |"
    yield f"| the same from a fresh `qa build` process (imports and model load included) | {a['add_fresh_process_s']:.1f} s | |"
    yield f"| peak RSS while adding it | {a['add_peak_rss_mb']:,.0f} MB | |"


def to_markdown(results: ScaleResults, command: str) -> str:
    return "\n".join([f"Command: `{command}`", "", *_lines(results)])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m qa.measure.scale", description=__doc__.split("\n")[0])
    parser.add_argument("phase", choices=sorted(PHASES))
    parser.add_argument("squad", type=Path, help="SQuAD v1.1 JSON file")
    parser.add_argument("--work", type=Path, required=True, help="where the corpus and indexes go")
    parser.add_argument("--sentences", type=int, default=1_000_000)
    parser.add_argument("--document", type=Path, required=True, help="the real document the add phase adds")
    parser.add_argument("--questions", type=int, default=200, help="questions the serve phase times")
    parser.add_argument("--recall-questions", type=int, default=200)
    args = parser.parse_args(argv)
    print(json.dumps(PHASES[args.phase](args)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
