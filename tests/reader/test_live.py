"""qa/reader/live.py: the index a long-running process answers from, swapped for newer builds and repaired."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from conftest import REPO

import qa
from qa.embed.encoder import Encoder
from qa.errors import RebuildRunning
from qa.indexing import build_index
from qa.measure.loadtest import BuildTexts
from qa.reader import live as live_module
from qa.reader.index import Index

OWLS = "Barn owls hunt voles at night over open fields.\n"
OWL_QUESTION = "What do barn owls hunt at night?"
HARBOUR = (
    "The harbour pilot boards incoming ships at dawn. She guides them past the sandbar.\n\n"
    "Tolls are collected on the southbound lanes of the bridge only.\n"
)
SEED_QUESTION = "When does the harbour pilot board ships?"


def wait_for(condition: Callable[[], bool], seconds: float = 300.0) -> bool:
    """Poll until `condition` holds or the time is up: a bound, not a timing check."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.05)
    return condition()


def assert_wholly_from_its_build(answer: qa.Answer, checker: BuildTexts) -> None:
    """Every quote and related hit is a slice of the text of the one build the answer names."""
    assert checker.mismatch(answer.to_dict()) is None


@pytest.fixture
def live_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, qa_cache: Path) -> Path:
    """A small seeds folder (QA_SEEDS) and an index folder (QA_INDEX) not built yet."""
    seeds = tmp_path / "seeds"
    seeds.mkdir()
    (seeds / "harbour.txt").write_text(HARBOUR, encoding="utf-8")
    monkeypatch.setenv("QA_SEEDS", str(seeds))
    monkeypatch.setenv("QA_INDEX", str(tmp_path / "index"))
    monkeypatch.setenv("QA_CACHE", str(qa_cache))
    qa.reload_settings()
    return seeds


def test_rebuild_swaps_to_the_new_index_only_when_it_is_live(live_env: Path, encoder: Encoder) -> None:
    live = qa.live_index()
    old = live.current()  # no index yet: built from the seeds
    (live_env / "owls.txt").write_text(OWLS, encoding="utf-8")
    seen_during_build: list[Path] = []

    def progress(done: int, total: int) -> None:
        seen_during_build.append(live.current().path)
        with pytest.raises(RebuildRunning):
            live.rebuild()

    new = live.rebuild(progress)
    assert seen_during_build and set(seen_during_build) == {old.path}
    assert new.path != old.path and live.current() is new
    assert "owls.txt" in new.sources and not live.rebuilding
    assert qa.answer(OWL_QUESTION).quotes[0].source == "owls.txt"

    for path in live_env.iterdir():  # a build that fails leaves the live index answering
        path.unlink()
    with pytest.raises(qa.SeedsError):
        live.rebuild()
    assert live.current() is new and not live.rebuilding


def test_questions_are_answered_from_the_old_build_while_the_new_one_loads(
    live_env: Path, encoder: Encoder, monkeypatch: pytest.MonkeyPatch
) -> None:
    live = qa.live_index()
    old = live.current()
    (live_env / "owls.txt").write_text(OWLS, encoding="utf-8")
    newer = build_index(live_env, live.index_dir, encoder)  # as another process would: CURRENT moves on disk
    loading, release = threading.Event(), threading.Event()
    real_load = live_module.load_index

    def slow_load(index_dir: Path, encoder: Encoder, **options: Any) -> Index:
        loading.set()
        assert release.wait(timeout=60)
        return real_load(index_dir, encoder, **options)

    monkeypatch.setattr(live_module, "load_index", slow_load)
    assert live.current() is old  # the pointer moved: a background load starts, this question does not wait
    assert loading.wait(timeout=60)
    for _ in range(3):
        answer = qa.answer(SEED_QUESTION)
        assert answer.answered and answer.build == old.path.name
    release.set()
    assert wait_for(lambda: live.current().path == newer.path)
    answer = qa.answer(OWL_QUESTION)
    assert answer.build == newer.path.name and answer.quotes[0].source == "owls.txt"


def test_a_build_by_another_process_is_swapped_in_while_questions_go_on(live_env: Path, qa_cache: Path) -> None:
    live = qa.live_index()
    old = live.warm()
    (live_env / "owls.txt").write_text(OWLS, encoding="utf-8")
    command = [sys.executable, "-m", "qa", "build", "--seeds", str(live_env), "--index", str(live.index_dir)]
    process = subprocess.Popen(
        command, cwd=REPO, env=os.environ.copy(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    )
    builds: list[str] = []
    checker = BuildTexts(live.index_dir)
    deadline = time.monotonic() + 300
    try:
        # Keep asking until the new build has been built, loaded and swapped in (bounded).
        while time.monotonic() < deadline and (process.poll() is None or live.current().path == old.path):
            answer = qa.answer(OWL_QUESTION)
            assert_wholly_from_its_build(answer, checker)
            builds.append(answer.build)
            time.sleep(0.05)  # leave the build a core
    finally:
        process.kill() if process.poll() is None else None
        output = process.communicate()[0].decode()
    assert process.returncode == 0, output
    new = live.current()
    assert new.path != old.path and "owls.txt" in new.sources
    assert builds[0] == old.path.name and set(builds) <= {old.path.name, new.path.name}
    answer = qa.answer(OWL_QUESTION)
    assert answer.build == new.path.name and answer.quotes[0].source == "owls.txt"


def test_a_damaged_index_is_rebuilt_from_the_seeds_and_says_so(live_env: Path, encoder: Encoder) -> None:
    index_dir = Path(os.environ["QA_INDEX"])
    damaged = build_index(live_env, index_dir, encoder)
    faiss_file = damaged.path / "sentences.faiss"
    faiss_file.write_bytes(faiss_file.read_bytes()[: faiss_file.stat().st_size // 2])
    with pytest.raises(qa.IndexCorruptError, match=r"sentences\.faiss is missing or corrupt"):
        qa.load_index(index_dir)

    live = qa.live_index()
    index = live.current()
    assert index.path != damaged.path and qa.load_index(index_dir).path == index.path
    assert live.notice and "could not be used" in live.notice and "sentences.faiss" in live.notice
    assert f"rebuilt from {live_env}" in live.notice
    assert live.status()["notice"] == live.notice and live.status()["build"] == index.path.name
    assert qa.answer(SEED_QUESTION).answered


def test_a_broken_pointer_while_serving_keeps_answering_and_is_repaired(live_env: Path, encoder: Encoder) -> None:
    live = qa.live_index()
    old = live.current()
    (live.index_dir / "CURRENT").write_text("build-that-was-deleted\n", encoding="utf-8")
    assert live.current() is old  # the build in memory answers while the folder is rebuilt
    assert qa.answer(SEED_QUESTION).build == old.path.name
    assert wait_for(lambda: live.current().path != old.path)
    assert qa.load_index(live.index_dir).path == live.current().path
    assert live.notice and "build-that-was-deleted" in live.notice and "rebuilt from" in live.notice


def test_a_newer_build_that_fails_its_checksums_is_never_served(live_env: Path, encoder: Encoder) -> None:
    live = qa.live_index()
    old = live.current()
    (live_env / "owls.txt").write_text(OWLS, encoding="utf-8")
    newer = build_index(live_env, live.index_dir, encoder)
    next(newer.path.glob("segments/*/texts.jsonl")).write_text("{}\n", encoding="utf-8")
    served: set[Path] = set()

    def repaired() -> bool:
        served.add(live.current().path)
        return live.current().path not in (old.path, newer.path)

    assert wait_for(repaired)
    assert newer.path not in served
    assert live.notice and "texts.jsonl" in live.notice
    assert "owls.txt" in live.current().sources and qa.answer(OWL_QUESTION).quotes[0].source == "owls.txt"


def test_public_build_index_is_answered_from_at_once(live_env: Path, encoder: Encoder) -> None:
    first = qa.default_index()
    (live_env / "owls.txt").write_text(OWLS, encoding="utf-8")
    built = qa.build_index(live_env, os.environ["QA_INDEX"])
    assert first is not built and qa.default_index() is built


def test_status_without_seeds_or_index_says_how_to_build(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("QA_SEEDS", str(tmp_path / "no-seeds"))
    monkeypatch.setenv("QA_INDEX", str(tmp_path / "no-index"))
    qa.reload_settings()
    with pytest.raises(qa.IndexMissingError, match="python -m qa build"):
        qa.live_index().status()
