"""Build on a Ray cluster (`qa build --ray auto|ADDRESS`): the new and changed files are read, split and embedded there.

The driver (the machine running `qa build`, itself a node of the cluster)
hashes the seed files as a local build does, so only new and changed files
are sent, with their bytes: no node needs the seeds folder, nor this
package (it is shipped with the job, `py_modules`). One Ray Data pipeline
then runs over them:

    from_items(files) -> map(split_file) -> map_batches(EmbedDocuments actors) -> rows back to the driver

Extraction and splitting are qa/ingest/seeds.py's and qa/split.py's own
code; each actor loads the build's model once, on one torch thread, and
embeds with qa/embed/documents.py's functions. Each document's row is kept
as a shard on the driver's disk as it arrives (qa/cluster/shards.py), and
the build is committed locally, exactly as a local one (qa/indexing.py).
Nothing here is imported, nor is Ray, unless a build asks for a cluster.
"""

from __future__ import annotations

import logging
import socket
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from qa.cluster import MadeElsewhere
from qa.cluster.shards import Shards, made_elsewhere
from qa.cluster.work import EmbedDocuments, split_file
from qa.config import RAY_ADDRESS
from qa.embed.documents import Progress
from qa.embed.encoder import Encoder
from qa.errors import QAError
from qa.ingest.seeds import SourceFile, duplicate
from qa.records import SkippedFile

logger = logging.getLogger(__name__)

RAY_MISSING = (
    "building on Ray needs Ray: pip install -r requirements-ray.txt (or pip install 'qa[ray]'), "
    "on this machine and on every node of the cluster"
)
# How long to wait for the cluster's address to answer at all. ray.init itself
# keeps retrying an unreachable address for minutes.
CONNECT_TIMEOUT_S = 5.0
PACKAGE = Path(__file__).resolve().parents[1]


def import_ray() -> Any:
    """The ray module, or a QAError saying what to install."""
    try:
        import ray
    except ImportError as error:
        raise QAError(RAY_MISSING) from error
    return ray


def check_reachable(address: str) -> None:
    """Fail within CONNECT_TIMEOUT_S when nothing answers at HOST:PORT ("auto" is found by Ray itself)."""
    match = RAY_ADDRESS.match(address)
    if match is None:
        return
    host = match["host"].strip("[]")
    try:
        with socket.create_connection((host, int(match["port"])), timeout=CONNECT_TIMEOUT_S):
            pass
    except OSError as error:
        reason = "no answer" if isinstance(error, TimeoutError) else (error.strerror or str(error))
        raise QAError(
            f"cannot reach a Ray cluster at {address} ({reason} within {CONNECT_TIMEOUT_S:g} s): "
            "start one with `ray start --head` there, or check the address and port it printed; "
            "the index is unchanged"
        ) from error


@contextmanager
def connected(address: str) -> Iterator[Any]:
    """This process as a driver of the cluster at `address`, disconnected after.

    The job ships this qa package to the nodes and runs them offline (no model
    is ever downloaded); Ray's token authentication is its own: set
    RAY_AUTH_MODE=token and the token (RAY_AUTH_TOKEN or ~/.ray/auth_token)
    alike on every node and here.
    """
    ray = import_ray()
    check_reachable(address)
    runtime_env = {
        "py_modules": [str(PACKAGE)],
        "excludes": ["*.onnx", "__pycache__"],
        "env_vars": {"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"},
    }
    try:
        ray.init(address=address, runtime_env=runtime_env, log_to_driver=False, logging_level=logging.WARNING)
    except (ConnectionError, RuntimeError, ValueError, ray.exceptions.RayError) as error:  # a wrong token among them
        raise QAError(f"cannot connect to the Ray cluster at {address}: {error}; the index is unchanged") from error
    for name in ("ray", "ray.data"):  # the library is quiet: Ray's own notes go to its log files
        logging.getLogger(name).setLevel(logging.ERROR)
    context = ray.data.DataContext.get_current()
    context.enable_progress_bars = False
    context.print_on_execution_start = False
    try:
        yield ray
    finally:
        ray.shutdown()


class _NodeEmbedder(EmbedDocuments):
    """EmbedDocuments that names the Ray node it runs on."""

    def worker(self) -> str:
        import ray

        return str(ray.get_runtime_context().get_node_id())


@dataclass
class RayTimings:
    """Where a build on Ray spent its time, as the driver saw it; `documents` holds each document's meta."""

    called_at: float = 0.0
    pipeline_started_at: float = 0.0  # time.time(), as the actors' ready_at
    pipeline_s: float = 0.0
    first_row_s: float = 0.0
    shards_s: float = 0.0
    assemble_s: float = 0.0
    documents: list[dict[str, Any]] = field(default_factory=list)


class RayBuild:
    """A Remote (qa/cluster/__init__.py) that reads, splits and embeds a build's new files on the connected cluster.

    Args:
        actors: embedding actors, each on one CPU (default: one per CPU the cluster offers).
        documents_per_batch: documents an actor embeds at once (the unit of work is a document).
    """

    def __init__(
        self,
        encoder: Encoder,
        model: str | None,
        shards: Shards,
        actors: int | None = None,
        documents_per_batch: int = 1,
        progress: Progress | None = None,
    ) -> None:
        self.encoder, self.model, self.shards = encoder, model, shards
        self.actors, self.documents_per_batch, self.progress = actors, documents_per_batch, progress
        self.sent: list[SourceFile] = []
        self.timings = RayTimings()

    def __call__(
        self, new_files: list[SourceFile], readable: list[SourceFile], skipped: list[SkippedFile]
    ) -> MadeElsewhere:
        self.timings.called_at = time.perf_counter()
        pending, self.sent = list(new_files), []
        while pending:
            missing = self.shards.missing(pending)
            if missing:
                self._run(missing)
            self.sent += pending
            pending, skipped = self._reopened(pending, skipped)
        started = time.perf_counter()
        made = made_elsewhere(self.shards, self.sent, readable, skipped, self.encoder.fingerprint.dimension)
        self.timings.assemble_s = time.perf_counter() - started
        self.timings.documents = [self.shards.meta(f) for f in self.sent]
        return made

    def _reopened(
        self, pending: list[SourceFile], skipped: list[SkippedFile]
    ) -> tuple[list[SourceFile], list[SkippedFile]]:
        """Files skipped as duplicates of a file the cluster could not read: a local build reads each itself.

        Of each such group the first in path order is read next; the others
        become its duplicates, as a local build's reading would judge them.
        """
        failed = {f.source: f for f in pending if isinstance(self.shards.read(f), SkippedFile)}
        reopened: dict[str, SourceFile] = {}
        kept = []
        for entry in skipped:
            first = failed.get(entry.duplicate_of or "")
            if first is None:
                kept.append(entry)
            elif first.source not in reopened:
                suffix = Path(entry.source).suffix.lower().lstrip(".")
                reopened[first.source] = SourceFile(entry.source, first.sha256, "", suffix, data=first.data)
            else:
                kept.append(duplicate(entry.source, first.sha256, reopened[first.source].source))
        return list(reopened.values()), kept

    def _run(self, files: list[SourceFile]) -> None:
        """The pipeline over these files; each document's row is kept as a shard as soon as it is back."""
        import ray

        started = time.perf_counter()
        self.timings.pipeline_started_at = time.time()
        actors = min(self.actors or max(1, int(ray.cluster_resources().get("CPU", 1))), len(files))
        items = [{"source": f.source, "suffix": f".{f.format}", "sha256": f.sha256, "data": f.data} for f in files]
        dataset: Any = ray.data.from_items(items, override_num_blocks=len(items))
        dataset = dataset.map(split_file)
        dataset = dataset.map_batches(
            _NodeEmbedder,
            fn_constructor_kwargs={
                "model": self.model,
                "batch_size": self.encoder.batch_size,
                "weights_sha256": self.encoder.fingerprint.weights_sha256,
            },
            # One document at a time per actor: a free actor takes the next one, so none waits behind a busy one.
            compute=ray.data.ActorPoolStrategy(size=actors, max_tasks_in_flight_per_actor=1),
            num_cpus=1,
            batch_size=self.documents_per_batch,
            batch_format="numpy",
        )
        by_source = {f.source: f for f in files}
        done, total, writing = 0, len(files), 0.0
        logger.info("building %d documents on %d Ray actors", total, actors)
        try:
            for row in dataset.iter_rows():
                if not done:
                    self.timings.first_row_s = time.perf_counter() - started
                wrote = time.perf_counter()
                self.shards.write(by_source[row["source"]], row)
                writing += time.perf_counter() - wrote
                done += 1
                if self.progress is not None:
                    self.progress(done, total)
        except ray.exceptions.RayError as error:
            raise QAError(
                f"the build on the Ray cluster failed after {done} of {total} documents: {_last_line(error)}; "
                "the index is unchanged, and the documents done are kept for the next build"
            ) from error
        self.timings.pipeline_s += time.perf_counter() - started
        self.timings.shards_s += writing

    def forget(self) -> None:
        """Remove the shards of the documents this build sent (call once it has committed them)."""
        self.shards.remove(self.sent)


def _last_line(error: BaseException) -> str:
    """The last non-empty line of an error, which for a remote one names its cause."""
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    return lines[-1] if lines else type(error).__name__


@contextmanager
def ray_build(
    address: str, encoder: Encoder, model: str | None, cache_dir: Path, progress: Progress | None = None
) -> Iterator[RayBuild]:
    """A RayBuild on the cluster at `address`, its shards under cache_dir/shards; they are removed if the build commits."""
    with connected(address):
        build = RayBuild(encoder, model, Shards(cache_dir / "shards", encoder.fingerprint), progress=progress)
        yield build
        build.forget()
