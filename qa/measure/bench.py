"""Speed of answering, building and starting up (`python -m qa bench`).

Every figure is measured in one run on one machine, so that ratios and
medians compare like with like; absolute times move with the machine's load.
The latency curve beyond SQuAD's size replicates the SQuAD corpus in several
folders: each copy's texts are identical (its files differ only in trailing
blank lines), so their vectors are reused from the first copy instead of
being embedded again. The curve therefore measures
the cost of searching a larger index, not of embedding it.
"""

from __future__ import annotations

import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from qa.embed.documents import LONG_SENTENCE_WORDS
from qa.embed.encoder import Encoder
from qa.indexing import build_index
from qa.measure.datasets import EvalQuestion
from qa.measure.processes import package_environment, peak_rss_mb
from qa.quotes import answer_question
from qa.reader.index import Index, load_index
from qa.split import word_windows

Report = Callable[[str], None]


def percentile(values: list[float], share: float) -> float:
    """The value below which `share` of the values fall (linear interpolation)."""
    return float(np.percentile(np.asarray(values, dtype=np.float64), 100 * share))


@dataclass(frozen=True)
class Latency:
    """Warm answer() latency, one question at a time, in milliseconds."""

    sentences: int
    questions: int
    p50_ms: float
    p95_ms: float


def answer_latency(index: Index, questions: list[str]) -> Latency:
    """Time qa's answer step per question after one untimed warm-up call, as qa.answer runs it under the
    current settings (with the answer verifier unless QA_VERIFIER=off)."""
    from qa.api import verifier

    scorer = verifier()
    answer_question(index, questions[0], verifier=scorer)  # loads BM25 and caches: not part of a warm answer
    times = []
    for question in questions:
        started = time.perf_counter()
        answer_question(index, question, verifier=scorer)
        times.append(1000 * (time.perf_counter() - started))
    return Latency(len(index.sentences), len(times), percentile(times, 0.5), percentile(times, 0.95))


class ReusingEncoder:
    """An encoder that embeds each distinct text once and reuses its vector after.

    It stands in for the real encoder when a corpus is copies of texts already
    embedded: the vectors are exactly those the model gives for these texts.
    """

    def __init__(
        self, encoder: Encoder, known: dict[str, np.ndarray], windows: dict[str, np.ndarray] | None = None
    ) -> None:
        self.encoder = encoder
        self.known = known
        self.known_windows = windows if windows is not None else {}

    def encode(self, texts: list[str], progress: Any = None) -> np.ndarray:
        missing = [text for text in dict.fromkeys(texts) if text not in self.known]
        if missing:
            self.known.update(zip(missing, self.encoder.encode(missing, progress), strict=True))
        if not texts:
            return self.encoder.encode([])
        return np.stack([self.known[text] for text in texts])

    def encode_with_spans(
        self, texts: list[str], spans: list[list[tuple[int, int]]], progress: Any = None
    ) -> tuple[np.ndarray, np.ndarray]:
        span_of = dict(zip(texts, spans, strict=True))
        missing = [text for text in dict.fromkeys(texts) if text not in self.known or text not in self.known_windows]
        if missing:
            vectors, windows = self.encoder.encode_with_spans(missing, [span_of[t] for t in missing], progress)
            bounds = np.cumsum([0, *(len(span_of[t]) for t in missing)])
            for number, text in enumerate(missing):
                self.known[text] = vectors[number]
                self.known_windows[text] = windows[bounds[number] : bounds[number + 1]]
        if not texts:
            return self.encoder.encode_with_spans([], [])
        dimension = self.encoder.fingerprint.dimension
        parts = [np.zeros((0, dimension), dtype=np.float32), *(self.known_windows[text] for text in texts)]
        return np.stack([self.known[text] for text in texts]), np.concatenate(parts)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.encoder, name)


def known_windows(index: Index) -> dict[str, np.ndarray]:
    """Every sentence text of an index with its word windows' vectors as stored (float32)."""
    texts = list(index.tables.sentence_texts())
    vectors, bounds = index.windows.in_row_order()
    return {
        text: np.asarray(vectors[bounds[row] : bounds[row + 1]], dtype=np.float32) for row, text in enumerate(texts)
    }


def known_vectors(index: Index) -> dict[str, np.ndarray]:
    """Every text of an index with the vector it was stored with."""
    known: dict[str, np.ndarray] = {}
    named = (
        (list(index.tables.sentence_texts()), index.sentence_store, index.sentence_keys),
        (list(index.tables.passage_texts()), index.passage_store, index.passage_keys),
    )
    for texts, store, keys in named:
        known.update(zip(texts, store.vectors(keys), strict=True))
    return known


@contextmanager
def scratch() -> Iterator[Path]:
    folder = Path(tempfile.mkdtemp(prefix="qa-bench-"))
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def latency_curve(
    corpus: Path, base: Index, encoder: Encoder, copies: list[int], questions: list[str], report: Report
) -> list[Latency]:
    """answer() latency over the corpus copied 1, 2, ... times into one index."""
    reusing = ReusingEncoder(encoder, known_vectors(base), known_windows(base))
    curve = []
    for count in copies:
        with scratch() as folder:
            for number in range(count):
                distinct_copy(corpus, folder / "seeds" / f"copy-{number:02d}", number)
            index = build_index(folder / "seeds", folder / "index", reusing)  # type: ignore[arg-type]
            index.encoder = encoder
            curve.append(answer_latency(index, questions))
            report(
                f"latency at {curve[-1].sentences:,} sentences: p50 {curve[-1].p50_ms:.1f} ms, p95 {curve[-1].p95_ms:.1f} ms"
            )
    return curve


def distinct_copy(corpus: Path, target: Path, number: int) -> None:
    """Copy the corpus's text files with `number` blank lines added to each.

    Files with the same bytes are indexed once (qa/ingest/seeds.py); trailing blank
    lines give each copy bytes of its own while its passages and sentences
    stay the very same texts, at the same offsets.
    """
    shutil.copytree(corpus, target)
    for path in target.rglob("*.txt"):
        with path.open("a", encoding="utf-8") as handle:
            handle.write("\n" * number)


@dataclass(frozen=True)
class Throughput:
    """A full build against raw model encoding of the very texts the build embeds."""

    sentences: int
    texts: int
    build_s: float
    encode_s: float

    @property
    def overhead(self) -> float:
        return self.build_s / self.encode_s - 1


def build_throughput(corpus: Path, encoder: Encoder, rounds: int = 3) -> Throughput:
    """Medians over `rounds` of a full build and of SentenceTransformer.encode, alternated."""
    builds, encodes = [], []
    for _ in range(rounds):
        with scratch() as folder:
            started = time.perf_counter()
            index = build_index(corpus, folder / "index", encoder, full=True)
            builds.append(time.perf_counter() - started)
        # The very texts the build embedded: sentences, paragraphs and long sentences' windows.
        texts = list(known_vectors(index))
        texts += [
            text[a:b]
            for text in index.tables.sentence_texts()
            if len(text.split()) > LONG_SENTENCE_WORDS
            for a, b in word_windows(text, 0, len(text))
        ]
        started = time.perf_counter()
        encoder.model.encode(texts, batch_size=encoder.batch_size, normalize_embeddings=True, show_progress_bar=False)
        encodes.append(time.perf_counter() - started)
    return Throughput(len(index.sentences), len(texts), statistics.median(builds), statistics.median(encodes))


@dataclass(frozen=True)
class AddDocument:
    """Adding one document to a built index: the build, then the first answer from it."""

    sentences_before: int
    build_s: float
    first_answer_s: float


def add_document(
    corpus: Path, index_dir: Path, document: Path, encoder: Encoder, question: str, rounds: int = 3
) -> AddDocument:
    """Median time for an incremental build that adds `document` to a copy of a built index."""
    builds, firsts = [], []
    with scratch() as folder:
        shutil.copytree(corpus, folder / "seeds")
        shutil.copytree(index_dir, folder / "index")
        before = len(load_index(folder / "index", encoder).sentences)
        text = document.read_text(encoding="utf-8")
        for number in range(rounds):
            # A different text each round, so each round really adds a document.
            (folder / "seeds" / f"added-{number}.txt").write_text(f"{text}\nRevision {number}.\n", encoding="utf-8")
            started = time.perf_counter()
            index = build_index(folder / "seeds", folder / "index", encoder)
            builds.append(time.perf_counter() - started)
            started = time.perf_counter()
            answer_question(index, question)
            firsts.append(time.perf_counter() - started)
    return AddDocument(before, statistics.median(builds), statistics.median(firsts))


_COLD_SCRIPT = """
import json, sys, time
started = time.perf_counter()
import qa
imported = time.perf_counter()
index = qa.load_index(sys.argv[1])
loaded = time.perf_counter()
qa.answer(sys.argv[2], index=index)
done = time.perf_counter()
from qa.measure.processes import peak_rss_mb
print(json.dumps({"import_s": imported - started, "load_s": loaded - imported, "answer_s": done - loaded,
                  "peak_rss_mb": peak_rss_mb()}))
"""


@dataclass(frozen=True)
class ColdStart:
    """A new process: import qa, load the index and model, answer once. Medians."""

    sentences: int
    total_s: float
    import_s: float
    load_s: float
    answer_s: float
    peak_rss_mb: float


def cold_start(index_dir: Path, sentences: int, question: str, rounds: int = 3) -> ColdStart:
    """Medians over `rounds` fresh interpreters; total is wall time from launch to exit."""
    runs: list[dict[str, float]] = []
    for _ in range(rounds):
        started = time.perf_counter()
        output = subprocess.run(
            [sys.executable, "-c", _COLD_SCRIPT, str(index_dir), question],
            capture_output=True,
            text=True,
            check=True,
            env=package_environment(),
        ).stdout
        runs.append({**json.loads(output.strip().splitlines()[-1]), "total_s": time.perf_counter() - started})
    median = {key: statistics.median(run[key] for run in runs) for key in runs[0]}
    return ColdStart(
        sentences,
        median["total_s"],
        median["import_s"],
        median["load_s"],
        median["answer_s"],
        max(r["peak_rss_mb"] for r in runs),
    )


@dataclass(frozen=True)
class QueryThreads:
    """Question embedding alone: torch on one thread, torch's default, and onnxruntime. Medians, ms."""

    default_threads: int
    one_thread_ms: float
    default_ms: float
    onnx_ms: float | None = None  # None when the ONNX question encoder is unavailable


def query_threads(encoder: Encoder, questions: list[str], rounds: int = 3) -> QueryThreads:
    """Time the question embedding every way, alternating rounds so load hits each alike."""
    import torch

    from qa.embed.encoder import one_torch_thread

    default = torch.get_num_threads()
    timings: dict[str, list[float]] = {"one": [], "many": [], "onnx": []}

    def timed(name: str, embed: Callable[[], Any]) -> None:
        started = time.perf_counter()
        embed()
        timings[name].append(1000 * (time.perf_counter() - started))

    def torch_embed(question: str) -> Callable[[], Any]:
        return lambda: encoder.model.encode([question], normalize_embeddings=True, show_progress_bar=False)

    encoder.model.encode(questions[:1])
    for _ in range(rounds):
        for question in questions:
            with one_torch_thread():
                timed("one", torch_embed(question))
            timed("many", torch_embed(question))
            if encoder.onnx_query is not None:
                onnx = encoder.onnx_query
                timed("onnx", lambda: onnx.encode(question))  # noqa: B023 (called at once)
    onnx_ms = statistics.median(timings["onnx"]) if timings["onnx"] else None
    return QueryThreads(default, statistics.median(timings["one"]), statistics.median(timings["many"]), onnx_ms)


@dataclass
class BenchResults:
    """Everything one `qa bench` run measured."""

    latencies: list[Latency] = field(default_factory=list)
    throughput: Throughput | None = None
    add: AddDocument | None = None
    cold: list[ColdStart] = field(default_factory=list)
    threads: QueryThreads | None = None
    peak_rss_mb: float = 0.0  # of the benchmark process itself, which held the largest index


def question_texts(questions: list[EvalQuestion], count: int) -> list[str]:
    return [question.question for question in questions[:count]]


def measure(
    squad: Path,
    work: Path,
    seeds_dir: Path,
    encoder: Encoder,
    questions: int = 200,
    copies: tuple[int, ...] = (1, 3, 10),
    throughput_articles: int = 4,
    rounds: int = 3,
    report: Report = lambda line: None,
) -> BenchResults:
    """Run every measurement; `report` hears one line as each finishes.

    Args:
        rounds: repetitions of the build, add-a-document and cold-start timings (medians).
    """
    from qa.measure.datasets import load_squad, sample, write_corpus

    documents, squad_questions = load_squad(squad)
    write_corpus(documents, work / "seeds")
    asked = question_texts(sample(squad_questions, questions, seed=0), questions)
    results = BenchResults()
    with scratch() as folder:
        seed_index = build_index(seeds_dir, folder / "seed-index", encoder)
        results.threads = query_threads(encoder, asked[:50], rounds)
        report(
            f"question embedding p50: {results.threads.one_thread_ms:.1f} ms torch on one thread, {results.threads.default_ms:.1f} ms on {results.threads.default_threads}, onnx {results.threads.onnx_ms} ms"
        )
        results.latencies.append(answer_latency(seed_index, asked))
        report(f"latency at seed scale: p50 {results.latencies[-1].p50_ms:.1f} ms")
        squad_index = build_index(work / "seeds", work / "index", encoder)
        results.latencies += latency_curve(work / "seeds", squad_index, encoder, list(copies), asked, report)
        with scratch() as subset:
            for name in sorted(documents)[:throughput_articles]:
                shutil.copy2(work / "seeds" / name, subset / name)
            results.throughput = build_throughput(subset, encoder, rounds)
        report(f"build overhead over raw encoding: {100 * results.throughput.overhead:.1f}%")
        seed_document = seeds_dir / seed_index.sentences[0].source
        results.add = add_document(work / "seeds", work / "index", seed_document, encoder, asked[0], rounds)
        report(f"adding one document: {results.add.build_s:.2f} s")
        results.cold.append(cold_start(seed_index.path.parent, len(seed_index.sentences), asked[0], rounds))
        results.cold.append(cold_start(work / "index", len(squad_index.sentences), asked[0], rounds))
        report(f"cold start: {results.cold[0].total_s:.1f} s")
    results.peak_rss_mb = peak_rss_mb()
    return results
