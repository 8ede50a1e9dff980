"""The index under faults: killed, failed and concurrent builds, leftovers of crashes, damaged files.

Full and read-only disks: tests/system/test_disk_errors.py.
"""

from __future__ import annotations

import json
import logging
import re
import select
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import builds
import numpy as np
import pytest
from builds import FAULT_DOCS, RecordingEncoder, live_pointer, live_state, write_docs
from commands import Captured, assert_one_line_error, run
from conftest import REPO

import qa
import qa.storage.layout
import qa.storage.segments
from qa.embed.encoder import Encoder
from qa.errors import IndexCorruptError, IndexMissingError, QAError
from qa.indexing import build_index
from qa.reader.index import load_index
from qa.storage.layout import live_build, read_manifest

REBUILD_HINT = "python -m qa build --full"
BOUND = 120  # seconds: a limit on waiting for another process, never a timing check
CLIMBERS = "Climbers reach the summit in July."  # beta.txt's sentence, gone from the seeds in some tests


class FailingEncoder(RecordingEncoder):
    def encode(self, texts: list[str], progress: Any = None) -> np.ndarray:
        raise RuntimeError("encoder exploded")


def entries(index_dir: Path) -> set[str]:
    return {path.name for path in index_dir.iterdir()}


def assert_no_leftovers(index_dir: Path) -> None:
    """Only CURRENT, the lock, the live build and at most the one it replaced."""
    names = entries(index_dir)
    assert not [name for name in names if name.startswith(".tmp-")], names
    builds = {name for name in names if name.startswith("build-")}
    assert live_build(index_dir).name in builds and len(builds) <= 2, names


def build_holds_the_lock(index_dir: Path, pid: int) -> bool:
    if not Path("/proc/locks").is_file():
        pytest.skip("needs /proc/locks (Linux) to see which process holds the build lock")
    return builds.build_holds_the_lock(index_dir, pid)


def ask_json(capsys: Captured, monkeypatch: pytest.MonkeyPatch, index_dir: Path, question: str) -> dict[str, Any]:
    """`python -m qa ask --json` with the threshold at 0, so the best sentence is always quoted."""
    monkeypatch.setenv("QA_MIN_CONFIDENCE", "0")
    qa.reload_settings()
    code, out, err = run(capsys, "ask", question, "--index", str(index_dir), "--json")
    assert code == 0, err
    return json.loads(out)


def assert_quotes_the_old_beta(answer: dict[str, Any], index_dir: Path, encoder: Encoder) -> None:
    """The answer quotes beta.txt as the last good build indexed it, with offsets into that text."""
    quote = answer["quotes"][0]
    assert (quote["source"], quote["text"]) == ("beta.txt", CLIMBERS)
    source_text = load_index(index_dir, encoder).source_text("beta.txt")
    assert source_text[quote["start"] : quote["end"]] == CLIMBERS


# --- killed builds ------------------------------------------------------------------------


def test_build_killed_with_sigkill_leaves_the_previous_index_live(
    small_copy: tuple[Path, Path],
    encoder: Encoder,
    capsys: Captured,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A real `python -m qa build --full` killed while it holds the lock (loading the model or embedding)."""
    seeds_dir, index_dir = small_copy
    before = live_state(index_dir, encoder)
    write_docs(seeds_dir, {"beta.txt": "Beta mountain changed its name.\n"})
    command = [sys.executable, "-m", "qa", "build", "--seeds", str(seeds_dir), "--index", str(index_dir), "--full"]
    process = subprocess.Popen(command, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + BOUND
        while not build_holds_the_lock(index_dir, process.pid) and process.poll() is None:
            assert time.monotonic() < deadline, "the build never took the lock"
            time.sleep(0.02)
        time.sleep(0.5)  # a little way into the build: loading the model or embedding
        assert process.poll() is None, "the build ended before it could be killed"
    finally:
        process.kill()
        process.wait()
    assert process.returncode == -signal.SIGKILL

    # The next reader, library or command line, gets the last good build.
    assert live_state(index_dir, encoder) == before
    assert_quotes_the_old_beta(
        ask_json(capsys, monkeypatch, index_dir, "When do climbers reach the summit?"), index_dir, encoder
    )

    index = build_index(seeds_dir, index_dir, encoder)
    assert index.report is not None and index.report.changed == ["beta.txt"]
    assert_no_leftovers(index_dir)


# A build that pauses at one step and reports it, to be killed there; it gets
# there without embedding (the change is a removed file), so no model loads.
PAUSING_BUILD = """
import os, sys, time
sys.path.insert(0, sys.argv[1])
import qa.indexing
from qa.cli import main

stage, seeds, index = sys.argv[2:5]

def pause():
    print("paused", flush=True)
    time.sleep(600)  # until killed

if stage == "writing":  # the temporary folder holds the sentences, not yet the passages
    save = qa.indexing.FaissStore.save
    def paused_save(self, path):
        if path.name == "passages.faiss":
            pause()
        save(self, path)
    qa.indexing.FaissStore.save = paused_save
elif stage == "swapping":  # build-<id> is complete and its pointer written; CURRENT not replaced
    replace = os.replace
    def paused_replace(source, target):
        if os.path.basename(target) == "CURRENT":
            pause()
        replace(source, target)
    os.replace = paused_replace
elif stage == "cleaning":  # CURRENT names the new build; the old one not yet removed
    remove_leftovers = qa.storage.layout.remove_leftovers
    calls = []
    def paused_remove_leftovers(*args, **kwargs):
        calls.append(args)
        if len(calls) == 2:
            pause()
        remove_leftovers(*args, **kwargs)
    qa.storage.layout.remove_leftovers = paused_remove_leftovers
sys.exit(main(["build", "--seeds", seeds, "--index", index]))
"""


def kill_build_at(stage: str, seeds_dir: Path, index_dir: Path, log: Path) -> None:
    """Run a build that pauses at `stage`, and SIGKILL it there."""
    with log.open("w") as stderr:
        process = subprocess.Popen(
            [sys.executable, "-c", PAUSING_BUILD, str(REPO), stage, str(seeds_dir), str(index_dir)],
            stdout=subprocess.PIPE,
            stderr=stderr,
            text=True,
        )
    try:
        assert process.stdout is not None
        ready, _, _ = select.select([process.stdout], [], [], BOUND)
        assert ready and process.stdout.readline() == "paused\n", log.read_text()
    finally:
        process.kill()
        process.wait()
    assert process.returncode == -signal.SIGKILL


@pytest.mark.parametrize("stage", ["writing", "swapping", "cleaning"])
def test_build_killed_at_each_step_leaves_a_loadable_index(
    small_copy: tuple[Path, Path],
    encoder: Encoder,
    capsys: Captured,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    stage: str,
) -> None:
    seeds_dir, index_dir = small_copy
    before = live_state(index_dir, encoder)
    (seeds_dir / "beta.txt").unlink()
    kill_build_at(stage, seeds_dir, index_dir, tmp_path / "build.log")

    leftovers = {name for name in entries(index_dir) if name.startswith((".tmp-", "build-"))}
    answer = ask_json(capsys, monkeypatch, index_dir, "When do climbers reach the summit?")
    if stage == "cleaning":
        # The swap happened: the new build is the last good one, and it has no beta.txt.
        assert live_state(index_dir, encoder) != before
        assert "beta.txt" not in load_index(index_dir, encoder).sources
        assert all(quote["source"] != "beta.txt" for quote in answer["quotes"])
    else:
        assert live_state(index_dir, encoder) == before
        assert_quotes_the_old_beta(answer, index_dir, encoder)
        unfinished = {name for name in leftovers if name.startswith(".tmp-")}
        if stage == "writing":
            [folder] = unfinished
            assert (index_dir / folder / "sentences.faiss").is_file()
        else:
            assert len(unfinished) == 1 and unfinished.pop().endswith(".pointer")
            assert len([name for name in leftovers if name.startswith("build-")]) == 2  # live and unfinished

    index = build_index(seeds_dir, index_dir, encoder)
    assert index.report is not None
    assert index.report.removed == ([] if stage == "cleaning" else ["beta.txt"])
    assert_no_leftovers(index_dir)
    assert "beta.txt" not in load_index(index_dir, encoder).sources


# --- failed and concurrent builds -----------------------------------------------------


def test_failed_full_build_keeps_the_previous_index_live(small_copy: tuple[Path, Path], encoder: Encoder) -> None:
    seeds_dir, index_dir = small_copy
    before = live_state(index_dir, encoder)
    with pytest.raises(RuntimeError, match="encoder exploded"):
        build_index(seeds_dir, index_dir, FailingEncoder(encoder), full=True)  # type: ignore[arg-type]
    assert live_state(index_dir, encoder) == before
    assert entries(index_dir) == {"CURRENT", ".lock", live_build(index_dir).name}


def test_second_build_while_one_runs_is_refused(small_copy: tuple[Path, Path], encoder: Encoder) -> None:
    seeds_dir, index_dir = small_copy
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
        except BaseException as error:  # noqa: BLE001 - surfaced by the assertions below
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


def test_build_while_another_process_builds_fails_fast(
    small_copy: tuple[Path, Path], encoder: Encoder, capsys: Captured, tmp_path: Path
) -> None:
    seeds_dir, index_dir = small_copy
    write_docs(seeds_dir, {"beta.txt": "Beta mountain changed its name again.\n"})
    command = [sys.executable, "-m", "qa", "build", "--full", "--seeds", str(seeds_dir), "--index", str(index_dir)]
    log = tmp_path / "first-build.log"
    with log.open("w") as output:
        first = subprocess.Popen(command, cwd=REPO, stdout=output, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + BOUND
        while not build_holds_the_lock(index_dir, first.pid):
            assert first.poll() is None and time.monotonic() < deadline, log.read_text()
            time.sleep(0.02)
        # The first build holds the lock for as long as it loads the model and embeds.
        code, out, err = run(capsys, "build", "--seeds", str(seeds_dir), "--index", str(index_dir))
        assert code == 1 and out == ""
        assert_one_line_error(err, f"another build is running on {index_dir}; wait for it to finish")
        with pytest.raises(QAError, match="another build is running"):
            build_index(seeds_dir, index_dir, encoder, full=True)
        assert first.wait(timeout=BOUND) == 0, log.read_text()
    finally:
        first.kill()
        first.wait()
    assert log.read_text().startswith("full build of ")
    index = load_index(index_dir, encoder)  # every checksum verified
    assert "Beta mountain changed its name again." in {s.text for s in index.sentences}
    assert_no_leftovers(index_dir)


# --- leftovers of crashed builds ------------------------------------------------------


def test_next_build_removes_leftovers_of_crashes_but_never_the_live_build(
    small_copy: tuple[Path, Path], encoder: Encoder, tmp_path: Path
) -> None:
    seeds_dir, index_dir = small_copy
    live = live_build(index_dir)
    before = live_state(index_dir, encoder)
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "precious.txt").write_text("not the index's to delete\n", encoding="utf-8")
    unfinished = index_dir / ".tmp-20200101000000-0badf00d"
    unfinished.mkdir()
    (unfinished / "sentences.jsonl").write_text('{"id": "half a rec', encoding="utf-8")
    (index_dir / ".tmp-20200101000000-0badf00d.pointer").write_text("build-20200101000000-0badf00d\n")
    (index_dir / ".tmp-20200101000000-5ca1ab1e").symlink_to(outside, target_is_directory=True)
    superseded = index_dir / "build-20200101000000-deadbeef"  # an older complete build
    shutil.copytree(live, superseded)
    (index_dir / "build-20200101000000-cafef00d").mkdir()  # renamed, then killed before CURRENT
    (index_dir / "notes.txt").write_text("someone's notes\n", encoding="utf-8")

    # Readers go through CURRENT only.
    assert live_state(index_dir, encoder) == before
    index = build_index(seeds_dir, index_dir, encoder)

    assert entries(index_dir) == {"CURRENT", ".lock", "notes.txt", index.path.name, live.name}
    assert (outside / "precious.txt").read_text(encoding="utf-8") == "not the index's to delete\n"
    assert load_index(index_dir, encoder).sentences == index.sentences


@pytest.mark.parametrize(
    "pointer",
    [
        ".tmp-20200101000000-0badf00d",
        "build-x/../.tmp-20200101000000-0badf00d",
        "../index/.tmp-20200101000000-0badf00d",
    ],
)
def test_a_reader_never_follows_a_pointer_to_a_temporary_folder(
    small_copy: tuple[Path, Path], encoder: Encoder, pointer: str
) -> None:
    _, index_dir = small_copy
    temporary = index_dir / ".tmp-20200101000000-0badf00d"
    shutil.copytree(live_build(index_dir), temporary)
    (index_dir / "CURRENT").write_text(pointer + "\n", encoding="utf-8")
    with pytest.raises(IndexCorruptError, match="garbled"):
        load_index(index_dir, encoder)


# --- damaged files --------------------------------------------------------------------

# A segment's files by pattern: its folder is named by the build that wrote it.
INDEX_FILES = [
    *qa.storage.layout.BUILD_FILES,
    *(f"segments/*/{name}" for name in qa.storage.segments.SEGMENT_FILES),
    "manifest.json",
    "CURRENT",
]


def damage(path: Path, how: str) -> None:
    """Truncate to half, change one bit or one whole byte in the middle, or delete."""
    if how == "delete":
        path.unlink()
        return
    data = path.read_bytes()
    middle = len(data) // 2
    if how == "truncate":
        path.write_bytes(data[:middle])
    else:
        mask = 0x01 if how == "flip-bit" else 0xFF  # 0xFF also makes text undecodable
        path.write_bytes(data[:middle] + bytes([data[middle] ^ mask]) + data[middle + 1 :])


# A deleted CURRENT is no index at all: test_deleted_pointer_is_no_index_and_a_plain_build_makes_one.
DAMAGES = [
    pytest.param(name, how, id=f"{how}-{name}")
    for how in ("truncate", "flip-bit", "flip-byte", "delete")
    for name in INDEX_FILES
    if (name, how) != ("CURRENT", "delete")
]


@pytest.mark.parametrize(("name", "how"), DAMAGES)
def test_damaged_file_is_named_and_a_plain_build_repairs_it(
    small_copy: tuple[Path, Path],
    encoder: Encoder,
    capsys: Captured,
    caplog: pytest.LogCaptureFixture,
    name: str,
    how: str,
) -> None:
    seeds_dir, index_dir = small_copy
    good = load_index(index_dir, encoder)
    assert good.windows  # every data file has something to damage
    path = index_dir / name if name == "CURRENT" else next(good.path.glob(name))
    damage(path, how)

    with pytest.raises(IndexCorruptError, match=re.escape(REBUILD_HINT)) as raised:
        load_index(index_dir, encoder)
    assert str(path) in str(raised.value)
    for argv in (["ask", "When do climbers reach the summit?"], ["info"]):
        code, out, err = run(capsys, *argv, "--index", str(index_dir))
        assert code == 1 and out == ""
        assert_one_line_error(err, str(path), REBUILD_HINT)

    # A plain build sees the live index cannot be reused, says why, and embeds everything again.
    with caplog.at_level(logging.WARNING, logger="qa.build"):
        rebuilt = build_index(seeds_dir, index_dir, encoder)
    assert rebuilt.report is not None and rebuilt.report.full
    assert "cannot reuse the live index" in caplog.text and str(path) in caplog.text
    loaded = load_index(index_dir, encoder)
    assert loaded.sentences == good.sentences and loaded.passages == good.passages
    assert loaded.texts == good.texts
    assert not [entry for entry in entries(index_dir) if entry.startswith(".tmp-")]


def test_deleted_pointer_is_no_index_and_a_plain_build_makes_one(
    small_copy: tuple[Path, Path], encoder: Encoder, capsys: Captured
) -> None:
    """Without CURRENT no build is live, as after a first build killed before its swap."""
    seeds_dir, index_dir = small_copy
    good = load_index(index_dir, encoder)
    (index_dir / "CURRENT").unlink()
    with pytest.raises(IndexMissingError, match=re.escape("run `python -m qa build` to create it")):
        load_index(index_dir, encoder)
    code, _, err = run(capsys, "ask", "When do climbers reach the summit?", "--index", str(index_dir))
    assert code == 1
    assert_one_line_error(err, f"no index at {index_dir}")

    rebuilt = build_index(seeds_dir, index_dir, encoder)
    assert rebuilt.report is not None and rebuilt.report.full and rebuilt.report.added == sorted(FAULT_DOCS)
    assert load_index(index_dir, encoder).sentences == good.sentences
    assert_no_leftovers(index_dir)


@pytest.mark.parametrize("name", ["manifest.json", "CURRENT"])
def test_every_changed_bit_of_the_manifest_or_pointer_is_found(
    small_copy: tuple[Path, Path], encoder: Encoder, name: str
) -> None:
    """CURRENT holds the manifest's sha256, so no bit of either can change unnoticed.

    load_index reads the manifest through read_manifest; the cheaper call keeps
    this to a fraction of a second for every bit position.
    """
    _, index_dir = small_copy
    path = index_dir / name if name == "CURRENT" else live_build(index_dir) / name
    data = path.read_bytes()
    # The manifest is checked by its sha256, which any change upsets; CURRENT is
    # parsed, so its bytes also become non-ASCII (0x80) and line breaks.
    masks = (0x01,) if name == "manifest.json" else (0x01, 0x80)
    for position in range(len(data)):
        for mask in masks:
            path.write_bytes(data[:position] + bytes([data[position] ^ mask]) + data[position + 1 :])
            with pytest.raises(IndexCorruptError):
                read_manifest(index_dir)
    path.write_bytes(data)
    assert load_index(index_dir, encoder).manifest == read_manifest(index_dir)


def test_pointer_to_a_missing_build_is_corrupt(small_copy: tuple[Path, Path], encoder: Encoder) -> None:
    _, index_dir = small_copy
    (index_dir / "CURRENT").write_text("build-20200101000000-00000000\n", encoding="utf-8")
    with pytest.raises(IndexCorruptError, match=f"names a missing build .*{re.escape(REBUILD_HINT)}"):
        load_index(index_dir, encoder)


def test_pointer_without_a_checksum_is_still_read(small_copy: tuple[Path, Path], encoder: Encoder) -> None:
    """Indexes built before CURRENT carried the manifest's sha256 keep loading."""
    _, index_dir = small_copy
    good = load_index(index_dir, encoder)
    assert live_pointer(index_dir).startswith(good.path.name + "\n")
    (index_dir / "CURRENT").write_text(good.path.name + "\n", encoding="utf-8")
    assert load_index(index_dir, encoder).sentences == good.sentences
