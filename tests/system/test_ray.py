"""`qa build --ray` on a real two-node Ray cluster on loopback (qa/measure/loopback.py): the same index, and a lost node.

Each build runs as `python -m qa build --ray ADDRESS` in a process of its
own, with the cluster's token authentication, as a user would run it; this
test process never imports Ray.
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from builds import DOCS, live_state, write_docs
from conftest import REPO
from ray_builds import assert_same_index, write_corpus
from samples import two_page_pdf

from qa.embed.encoder import Encoder
from qa.indexing import build_index
from qa.measure.loopback import LoopbackCluster
from qa.quotes import answer_question
from qa.reader.index import Index, load_index

pytestmark = pytest.mark.skipif(importlib.util.find_spec("ray") is None, reason="needs requirements-ray.txt")

BUILD_TIMEOUT_S = 900
QUESTION = "When did the alpha bridge open?"


@pytest.fixture(scope="session")
def cluster() -> Iterator[LoopbackCluster]:
    """A head and a worker node on 127.0.0.2 and 127.0.0.3, stopped by their own processes at the end."""
    started = LoopbackCluster().start()
    try:
        yield started
    finally:
        started.stop()


def ray_build(cluster: LoopbackCluster, seeds: Path, index_dir: Path, cache: Path) -> subprocess.Popen[str]:
    """`python -m qa build --ray ADDRESS` started as a user would, with the cluster's authentication."""
    environment = {**os.environ, **cluster.environment(), "QA_CACHE": str(cache), "PYTHONPATH": str(REPO)}
    command = [sys.executable, "-m", "qa", "build", "--seeds", str(seeds), "--index", str(index_dir)]
    return subprocess.Popen(
        [*command, "--ray", cluster.address],
        env=environment,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def finished(process: subprocess.Popen[str]) -> tuple[int, str, str]:
    out, err = process.communicate(timeout=BUILD_TIMEOUT_S)
    return process.returncode, out, err


def answers_from(index: Index) -> str:
    """The quoted text of the answer to QUESTION: the index is served."""
    answer = answer_question(index, QUESTION)
    assert answer.answered, answer
    return " ".join(quote.text for quote in answer.quotes)


def test_a_build_on_the_cluster_equals_a_local_build(
    cluster: LoopbackCluster, tmp_path: Path, encoder: Encoder
) -> None:
    seeds = write_docs(tmp_path / "seeds", DOCS)
    (seeds / "report.pdf").write_bytes(two_page_pdf())
    (seeds / "broken.pdf").write_bytes(b"%PDF-1.7 not really")
    code, out, err = finished(ray_build(cluster, seeds, tmp_path / "ray", tmp_path / "cache"))
    assert code == 0, err
    assert "full build" in out and "skipped 1" not in out
    assert_same_index(load_index(tmp_path / "ray", encoder), build_index(seeds, tmp_path / "local", encoder))
    assert not any((tmp_path / "cache" / "shards").iterdir())  # a committed build keeps no shards

    # Incremental: only the changed document goes to the cluster; the result is a local incremental build's.
    (seeds / "beta.txt").write_text("Beta mountain has no snow this year.\n", encoding="utf-8")
    code, out, err = finished(ray_build(cluster, seeds, tmp_path / "ray", tmp_path / "cache"))
    assert code == 0, err
    assert "incremental build" in out and "1 changed" in out and "embedded 1 sentences" in out
    assert_same_index(load_index(tmp_path / "ray", encoder), build_index(seeds, tmp_path / "local", encoder))


def shard_count(cache: Path) -> int:
    folder = cache / "shards"
    return len([path for path in folder.iterdir() if not path.name.startswith(".")]) if folder.is_dir() else 0


def test_losing_the_worker_node_mid_build_leaves_the_last_good_index_served(tmp_path: Path, encoder: Encoder) -> None:
    seeds = write_docs(tmp_path / "seeds", DOCS)
    index_dir, cache = tmp_path / "index", tmp_path / "cache"
    build_index(seeds, index_dir, encoder)
    before = live_state(index_dir, encoder)
    documents = 80
    write_corpus(seeds / "corpus", documents)  # long enough for the kill to land mid-build
    with LoopbackCluster() as own:
        process = ray_build(own, seeds, index_dir, cache)
        deadline = time.monotonic() + BUILD_TIMEOUT_S
        while shard_count(cache) < 5 and process.poll() is None and time.monotonic() < deadline:
            time.sleep(0.2)
        assert process.poll() is None, "the build ended before the node could be killed"
        done_at_kill = shard_count(cache)
        assert 5 <= done_at_kill < documents
        assert own.worker.processes()
        own.worker.kill()
        # While the build goes on without the node, the last good index is what is served.
        assert "1902" in answers_from(load_index(index_dir, encoder))
        code, out, err = finished(process)
    served = load_index(index_dir, encoder)
    assert "1902" in answers_from(served)
    if code == 0:  # Ray retried the lost node's work on the head node
        assert len(served.manifest.sources) == len(DOCS) + documents, out
    else:  # or the build failed, saying so, and the last good index is untouched
        assert "error: the build on the Ray cluster failed" in err, err
        assert live_state(index_dir, encoder) == before
