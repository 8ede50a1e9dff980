"""Load test of the web app: concurrent gradio_client clients asking over loopback, optionally while it rebuilds.

`python -m qa loadtest` starts `app.py` on a free 127.0.0.1 port (or uses a
running app given by --url, which must be loopback too), then runs N clients,
each asking one question after another through the /answer endpoint until the
time is up or it has asked its share. Every loop is bounded in count and time.

Each answer names the index build it came from; when the index folder is known,
every quote and related sentence is checked to be a slice of that build's text,
so an answer mixing two builds would count as an error.
"""

from __future__ import annotations

import json
import random
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from qa.errors import QAError
from qa.measure.bench import percentile
from qa.measure.processes import package_environment
from qa.measure.served import check_loopback, make_client
from qa.storage.layout import live_build, read_texts
from qa.storage.tables import Tables

REBUILD_SECONDS = 600.0
REBUILD_TAIL_SECONDS = 3.0  # long enough for the app to load a build another process wrote
QUESTION_WORDS = 8
Report = Callable[[str], None]


@dataclass
class Rebuild:
    """One rebuild started during the run: from the CLI in another process, or through the app."""

    kind: str
    started_s: float
    seconds: float = 0.0
    ok: bool = False
    detail: str = ""


@dataclass
class LoadReport:
    client: str
    clients: int
    seconds: float
    requests: int
    errors: int
    answered: int
    latencies_ms: list[float] = field(repr=False)
    builds: dict[str, int]
    rebuilds: list[Rebuild]
    error_samples: list[str]
    app_peak_rss_mb: float | None

    def summary(self) -> dict[str, Any]:
        """The figures, without the raw latencies."""
        data = asdict(self)
        del data["latencies_ms"]
        lat = self.latencies_ms or [float("nan")]
        data |= {
            "p50_ms": percentile(lat, 0.5),
            "p95_ms": percentile(lat, 0.95),
            "max_ms": max(lat),
            "requests_per_s": self.requests / self.seconds if self.seconds else 0.0,
        }
        return data


def questions_from(index_dir: Path, count: int, seed: int = 0) -> list[str]:
    """Questions made of the first words of sentences in the live index, so they have answers there.

    Read from the build's records, so the model need not load in this process.
    """
    build = live_build(index_dir)
    texts = read_texts(build)
    sentences = [text for text in Tables.load(build, texts).sentence_texts() if len(text.split()) >= 4]
    if not sentences:
        raise QAError(f"the index at {index_dir} has no sentence long enough to ask about; pass --questions")
    chosen = random.Random(seed).sample(sentences, min(count, len(sentences)))
    return [" ".join(text.split()[:QUESTION_WORDS]) + "?" for text in chosen]


def read_questions(path: Path) -> list[str]:
    """One question per line, or JSON lines with a "question" field."""
    lines = [line.strip() for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    questions = [json.loads(line)["question"] if line.startswith("{") else line for line in lines]
    if not questions:
        raise QAError(f"{path} holds no questions")
    return questions


class BuildTexts:
    """The text of each build folder, read once, to check that answers slice it."""

    def __init__(self, index_dir: Path | None) -> None:
        self.index_dir = index_dir
        self._texts: dict[str, dict[str, str]] = {}
        self._lock = threading.Lock()

    def mismatch(self, answer: dict[str, Any]) -> str | None:
        """Why the answer is not wholly from the build it names, or None."""
        if self.index_dir is None:
            return None
        build = answer.get("build", "")
        with self._lock:
            if build not in self._texts:
                path = self.index_dir / build
                if not build or not (path / "manifest.json").is_file():
                    return f"answer names build {build!r}, which is not in {self.index_dir}"
                self._texts[build] = read_texts(path)
            texts = self._texts[build]
        for item in (*answer["quotes"], *answer["related"]):
            if texts.get(item["source"], "")[item["start"] : item["end"]] != item["text"]:
                return f"{item['source']} chars {item['start']}-{item['end']} is not a slice of build {build}"
        return None


def run(
    url: str,
    questions: list[str],
    clients: int,
    seconds: float,
    max_requests: int,
    rebuilds: list[str],
    seeds_dir: Path,
    index_dir: Path | None,
    report: Report = lambda line: None,
    client_kind: str = "gradio_client",
) -> LoadReport:
    """Drive the app at `url` with `clients` clients for `seconds` (at most `max_requests` each).

    `rebuilds` ("cli", "app") are started at even intervals during the run, one
    after another; when they take longer than the run, the clients go on asking
    until REBUILD_TAIL_SECONDS after the last one, so every rebuild is asked through.
    """
    url = check_loopback(url)
    if "cli" in rebuilds and index_dir is None:
        raise QAError("a CLI rebuild needs the index folder: pass --index")
    connections = [make_client(client_kind, url) for _ in range(clients)]
    latencies: list[list[float]] = [[] for _ in range(clients)]
    outcomes: list[Counter[str]] = [Counter() for _ in range(clients)]
    samples: list[str] = []
    checker = BuildTexts(index_dir)
    start = time.monotonic()
    deadline = [start + seconds]  # moved on by the rebuilds, never past `hard_stop`
    hard_stop = start + seconds + len(rebuilds) * REBUILD_SECONDS

    def client(number: int) -> None:
        for count in range(max_requests):
            if time.monotonic() >= min(deadline[0], hard_stop):
                return
            question = questions[(number + count * clients) % len(questions)]
            asked = time.perf_counter()
            try:
                answer = connections[number].predict(question, 3, api_name="/answer")
                problem = checker.mismatch(answer)
            except Exception as error:  # noqa: BLE001  (every failure is counted and sampled; none stops the run)
                answer, problem = None, f"{type(error).__name__}: {error}"
            latencies[number].append((time.perf_counter() - asked) * 1000)
            if problem:
                outcomes[number]["error"] += 1
                if len(samples) < 10:
                    samples.append(problem)
            else:
                outcomes[number]["answered" if answer["answered"] else "abstained"] += 1
                outcomes[number]["build:" + answer["build"]] += 1

    threads = [threading.Thread(target=client, args=(n,), name=f"client-{n}") for n in range(clients)]
    for thread in threads:
        thread.start()
    if rebuilds:
        deadline[0] = hard_stop
        done = _rebuild_during(url, rebuilds, seeds_dir, index_dir, start, seconds, report)
        deadline[0] = max(start + seconds, time.monotonic() + REBUILD_TAIL_SECONDS)
    else:
        done = []
    for thread in threads:
        thread.join()
    elapsed = time.monotonic() - start
    totals = sum(outcomes, Counter())
    flat = [value for per_client in latencies for value in per_client]
    builds = {key.removeprefix("build:"): value for key, value in sorted(totals.items()) if key.startswith("build:")}
    return LoadReport(
        client_kind, clients, elapsed, len(flat), totals["error"], totals["answered"], flat, builds, done, samples, None
    )


def _rebuild_during(
    url: str,
    kinds: list[str],
    seeds_dir: Path,
    index_dir: Path | None,
    start: float,
    seconds: float,
    report: Report,
) -> list[Rebuild]:
    """Run each rebuild at its share of the run (one after another); how each went."""
    done = []
    for number, kind in enumerate(kinds, start=1):
        at = start + seconds * number / (len(kinds) + 1)
        time.sleep(max(0.0, at - time.monotonic()))
        rebuild = Rebuild(kind, round(time.monotonic() - start, 1))
        began = time.monotonic()
        if kind == "cli":
            assert index_dir is not None  # run() refuses a CLI rebuild without it
            folders = ["--seeds", str(seeds_dir.resolve()), "--index", str(index_dir.resolve())]
            command = [sys.executable, "-m", "qa", "build", *folders]
            try:  # with this qa package on the path, wherever the load test was started
                result = subprocess.run(
                    command,
                    env=package_environment(),
                    capture_output=True,
                    text=True,
                    timeout=REBUILD_SECONDS,
                    check=False,
                )
                rebuild.ok, rebuild.detail = result.returncode == 0, (result.stdout + result.stderr).strip()[-300:]
            except subprocess.TimeoutExpired:
                rebuild.detail = f"python -m qa build took over {REBUILD_SECONDS:.0f} s and was stopped"
        else:
            try:
                status, _ = make_client("gradio_client", url).predict(api_name="/rebuild")
                rebuild.ok, rebuild.detail = "Rebuilt:" in status, status
            except Exception as error:  # noqa: BLE001  (reported in the table, like any request that fails)
                rebuild.detail = f"{type(error).__name__}: {error}"
        rebuild.seconds = round(time.monotonic() - began, 2)
        report(f"{kind} rebuild at {rebuild.started_s} s: {'ok' if rebuild.ok else 'FAILED'} in {rebuild.seconds} s")
        done.append(rebuild)
    return done


def format_report(summary: dict[str, Any]) -> str:
    """The figures as a few lines of text."""
    lines = [
        (
            f"{summary['clients']} {summary['client']} clients, {summary['seconds']:.1f} s: {summary['requests']} requests "
            f"({summary['requests_per_s']:.1f}/s), {summary['errors']} errors, {summary['answered']} answered"
        ),
        f"latency ms: p50 {summary['p50_ms']:.1f}, p95 {summary['p95_ms']:.1f}, max {summary['max_ms']:.1f}",
        "answers per build: " + ", ".join(f"{build} {count}" for build, count in summary["builds"].items()),
    ]
    lines += [
        f"{r['kind']} rebuild at {r['started_s']} s: {'ok' if r['ok'] else 'FAILED'} in {r['seconds']} s"
        for r in summary["rebuilds"]
    ]
    if summary["app_peak_rss_mb"]:
        lines.append(f"app peak RSS {summary['app_peak_rss_mb']:.0f} MB")
    lines += [f"error: {sample}" for sample in summary["error_samples"]]
    return "\n".join(lines)
