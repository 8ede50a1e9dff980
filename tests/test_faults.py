"""The index under faults: failed and killed builds, concurrent builds, damaged files."""

from __future__ import annotations

import fcntl
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from builds import RecordingEncoder, live_pointer, live_state, write_docs
from conftest import REPO

import qa.build
from qa.build import build_index
from qa.embed import Encoder
from qa.errors import IndexCorruptError, QAError
from qa.index import Index, load_index

DATA_FILES = {"sentences.jsonl", "passages.jsonl", "sentences.faiss", "passages.faiss", "texts.jsonl"}


class FailingEncoder(RecordingEncoder):
    def encode(self, texts: list[str], progress: Any = None) -> np.ndarray:
        raise RuntimeError("encoder exploded")


def assert_next_build_picks_up_beta_and_cleans_up(seeds_dir: Path, index_dir: Path, encoder: Encoder) -> None:
    index = build_index(seeds_dir, index_dir, encoder)
    assert index.report is not None and index.report.changed == ["beta.txt"]
    assert not [p for p in index_dir.iterdir() if p.name.startswith(".tmp-")]


# --- atomic builds ----------------------------------------------------------------------


def test_failed_build_keeps_the_previous_index_live(
    built: tuple[Path, Path, Index], encoder: Encoder, monkeypatch: pytest.MonkeyPatch
) -> None:
    seeds_dir, index_dir, _ = built
    before = live_state(index_dir, encoder)
    write_docs(seeds_dir, {"beta.txt": "Beta mountain changed its name.\n"})

    def fail_after_the_temporary_folder_exists(self: Any, path: Path) -> None:
        assert path.parent.name.startswith(".tmp-") and (path.parent / "sentences.jsonl").is_file()
        raise OSError("disk full")

    monkeypatch.setattr(qa.build.FaissStore, "save", fail_after_the_temporary_folder_exists)
    with pytest.raises(qa.IndexWriteError, match=r"disk full\); the previous index is unchanged"):
        build_index(seeds_dir, index_dir, encoder)
    monkeypatch.undo()

    assert live_state(index_dir, encoder) == before
    leftovers = [p for p in index_dir.iterdir() if p.name.startswith(".tmp-")]
    assert leftovers, "the failed build should have left its temporary folder behind"

    assert_next_build_picks_up_beta_and_cleans_up(seeds_dir, index_dir, encoder)
    assert live_pointer(index_dir) != before[0]


def build_holds_the_lock(index_dir: Path) -> bool:
    with (index_dir / ".lock").open("a") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        fcntl.flock(handle, fcntl.LOCK_UN)
        return False


def test_build_killed_with_sigkill_leaves_the_previous_index_live(
    built: tuple[Path, Path, Index], encoder: Encoder
) -> None:
    seeds_dir, index_dir, _ = built
    before = live_state(index_dir, encoder)
    write_docs(seeds_dir, {"beta.txt": "Beta mountain changed its name.\n"})
    command = [sys.executable, "-m", "qa", "build", "--seeds", str(seeds_dir), "--index", str(index_dir), "--full"]
    process = subprocess.Popen(command, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 120
        while not build_holds_the_lock(index_dir) and process.poll() is None and time.monotonic() < deadline:
            time.sleep(0.02)
        time.sleep(0.5)  # inside the build: loading the model, embedding or writing
        assert process.poll() is None, "the build ended before it could be killed"
    finally:
        process.kill()
        process.wait()
    assert process.returncode == -signal.SIGKILL

    assert live_state(index_dir, encoder) == before
    assert_next_build_picks_up_beta_and_cleans_up(seeds_dir, index_dir, encoder)


def test_failed_full_build_keeps_the_previous_index_live(
    built: tuple[Path, Path, Index], encoder: Encoder
) -> None:
    seeds_dir, index_dir, _ = built
    before = live_state(index_dir, encoder)
    with pytest.raises(RuntimeError, match="encoder exploded"):
        build_index(seeds_dir, index_dir, FailingEncoder(encoder), full=True)  # type: ignore[arg-type]
    assert live_state(index_dir, encoder) == before


def test_second_build_while_one_runs_is_refused(built: tuple[Path, Path, Index], encoder: Encoder) -> None:
    seeds_dir, index_dir, _ = built
    write_docs(seeds_dir, {"beta.txt": "Beta mountain changed its name again.\n"})
    inside_encode, release = threading.Event(), threading.Event()
    outcome: dict[str, Any] = {}

    class SlowEncoder(RecordingEncoder):
        def encode(self, texts: list[str], progress: Any = None) -> np.ndarray:
            inside_encode.set()
            assert release.wait(timeout=60)
            return super().encode(texts, progress)

    def first_build() -> None:
        try:
            outcome["index"] = build_index(seeds_dir, index_dir, SlowEncoder(encoder))  # type: ignore[arg-type]
        except BaseException as error:  # surfaced by the assertions below
            outcome["error"] = error

    thread = threading.Thread(target=first_build)
    thread.start()
    try:
        assert inside_encode.wait(timeout=60), "the first build never reached the encoder"
        with pytest.raises(QAError, match="another build"):
            build_index(seeds_dir, index_dir, encoder)
    finally:
        release.set()
        thread.join(timeout=60)
    assert "error" not in outcome, outcome.get("error")
    assert outcome["index"].report.changed == ["beta.txt"]
    assert load_index(index_dir, encoder).path == outcome["index"].path

# --- load errors ------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(DATA_FILES))
@pytest.mark.parametrize("damage", ["truncate", "alter"])
def test_damaged_data_file_is_reported_as_corrupt(
    built: tuple[Path, Path, Index], encoder: Encoder, name: str, damage: str
) -> None:
    _, index_dir, _ = built
    path = index_dir / live_pointer(index_dir).strip() / name
    data = path.read_bytes()
    if damage == "truncate":
        path.write_bytes(data[: len(data) // 2])
    else:
        position = len(data) // 2
        path.write_bytes(data[:position] + bytes([data[position] ^ 0x01]) + data[position + 1 :])
    with pytest.raises(IndexCorruptError, match=re.escape("python -m qa build --full")) as raised:
        load_index(index_dir, encoder)
    assert name in str(raised.value)


def test_deleted_data_file_is_reported_as_corrupt(built: tuple[Path, Path, Index], encoder: Encoder) -> None:
    _, index_dir, _ = built
    (index_dir / live_pointer(index_dir).strip() / "passages.faiss").unlink()
    with pytest.raises(IndexCorruptError, match="--full"):
        load_index(index_dir, encoder)


def test_pointer_to_a_missing_build_is_corrupt(built: tuple[Path, Path, Index], encoder: Encoder) -> None:
    _, index_dir, _ = built
    (index_dir / "CURRENT").write_text("build-does-not-exist\n", encoding="utf-8")
    with pytest.raises(IndexCorruptError, match="--full"):
        load_index(index_dir, encoder)


def test_unreadable_manifest_is_corrupt(built: tuple[Path, Path, Index], encoder: Encoder) -> None:
    _, index_dir, _ = built
    (index_dir / live_pointer(index_dir).strip() / "manifest.json").write_text("{not json", encoding="utf-8")
    with pytest.raises(IndexCorruptError, match="--full"):
        load_index(index_dir, encoder)
