"""Builds on a full or read-only disk: IndexWriteError, the previous index live, nothing left behind.

Each step of writing a build is failed in turn, with ENOSPC and with EROFS;
then, where the machine allows a private mount namespace, a real read-only
mount and a real full tmpfs.
"""

from __future__ import annotations

import builtins
import errno
import io
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from builds import live_state
from commands import Captured, assert_one_line_error, run
from conftest import REPO

from qa.embed.encoder import Encoder
from qa.errors import IndexWriteError
from qa.indexing import build_index

BOUND = 120  # seconds: a limit on waiting for another process, never a timing check


def entries(index_dir: Path) -> set[str]:
    return {path.name for path in index_dir.iterdir()}


def cannot_write(index_dir: Path, code: int) -> str:
    return f"could not write the index in {index_dir} ({os.strerror(code)}); the previous index is unchanged"


def opened_for_writing(is_the_file: Callable[[str], bool]) -> Callable[..., bool]:
    """Matches an open() of a file whose name `is_the_file`, for writing."""

    def matches(path: Any, mode: str = "r", *args: Any, **kwargs: Any) -> bool:
        return isinstance(path, (str, os.PathLike)) and is_the_file(Path(path).name) and any(f in mode for f in "wax+")

    return matches


# Every step of qa/storage/layout.py's write_build, as the call that reaches the operating
# system: (module, function, which call fails).
STEPS: dict[str, tuple[Any, str, Callable[..., bool]]] = {
    "make the temporary folder": (os, "mkdir", lambda path, *args, **kwargs: Path(path).name.startswith(".tmp-")),
    # numpy and bm25s open their files with the builtin open, pathlib with io.open.
    "write sentences.npy": (builtins, "open", opened_for_writing(lambda name: name == "sentences.npy")),
    "write sources.json": (io, "open", opened_for_writing(lambda name: name == "sources.json")),
    "write passages.faiss": (io, "open", opened_for_writing(lambda name: name == "passages.faiss")),
    "write the BM25 files": (builtins, "open", opened_for_writing(lambda name: name == "vocab.index.json")),
    "write windows.npy": (builtins, "open", opened_for_writing(lambda name: name == "windows.npy")),
    "write texts.jsonl": (io, "open", opened_for_writing(lambda name: name == "texts.jsonl")),
    "write manifest.json": (io, "open", opened_for_writing(lambda name: name == "manifest.json")),
    "sync the files": (os, "fsync", lambda *args, **kwargs: True),
    "rename the temporary folder": (os, "rename", lambda source, *args, **kwargs: Path(source).name.startswith(".tmp-")),
    "write the pointer file": (io, "open", opened_for_writing(lambda name: name.endswith(".pointer"))),
    "replace CURRENT": (os, "replace", lambda source, target, *args, **kwargs: Path(target).name == "CURRENT"),
}
ERRORS = {"disk-full": errno.ENOSPC, "read-only": errno.EROFS}


def fail_step(patch: pytest.MonkeyPatch, step: str, code: int) -> list[Any]:
    """Make the step's call fail with `code`; returns the list of calls that failed."""
    owner, function, matches = STEPS[step]
    original = getattr(owner, function)
    failed: list[Any] = []

    def failing(*args: Any, **kwargs: Any) -> Any:
        if matches(*args, **kwargs):
            failed.append(args[0])
            raise OSError(code, os.strerror(code))
        return original(*args, **kwargs)

    patch.setattr(owner, function, failing)
    return failed


@pytest.mark.parametrize("code", ERRORS.values(), ids=ERRORS.keys())
@pytest.mark.parametrize("step", STEPS)
def test_write_failure_at_each_step_leaves_the_previous_index_as_it_was(
    small_copy: tuple[Path, Path], encoder: Encoder, monkeypatch: pytest.MonkeyPatch, step: str, code: int
) -> None:
    seeds_dir, index_dir = small_copy
    before, listing = live_state(index_dir, encoder), entries(index_dir)
    (seeds_dir / "beta.txt").unlink()  # something to write, nothing to embed
    with monkeypatch.context() as patch:
        failed = fail_step(patch, step, code)
        with pytest.raises(IndexWriteError) as raised:
            build_index(seeds_dir, index_dir, encoder)
    assert failed, f"the build never reached the step: {step}"
    assert str(raised.value) == cannot_write(index_dir, code)
    assert live_state(index_dir, encoder) == before  # same build, every checksum verified
    assert entries(index_dir) == listing  # what the failed build wrote is gone already

    index = build_index(seeds_dir, index_dir, encoder)  # once the disk has room again
    assert index.report is not None and index.report.removed == ["beta.txt"]


@pytest.mark.parametrize("code", ERRORS.values(), ids=ERRORS.keys())
def test_build_that_cannot_write_is_a_one_line_error(
    small_copy: tuple[Path, Path], capsys: Captured, monkeypatch: pytest.MonkeyPatch, code: int
) -> None:
    seeds_dir, index_dir = small_copy
    fail_step(monkeypatch, "make the temporary folder", code)
    exit_code, out, err = run(capsys, "build", "--seeds", str(seeds_dir), "--index", str(index_dir))
    assert exit_code == 1 and out == ""
    assert_one_line_error(err, cannot_write(index_dir, code))


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into a 0o555 folder all the same; the mount tests below cover root")
def test_build_in_a_folder_without_write_permission(small_copy: tuple[Path, Path], encoder: Encoder) -> None:
    seeds_dir, index_dir = small_copy
    before, listing = live_state(index_dir, encoder), entries(index_dir)
    index_dir.chmod(0o555)
    try:
        with pytest.raises(IndexWriteError, match=r"\(Permission denied\); the previous index is unchanged"):
            build_index(seeds_dir, index_dir, encoder)
        assert live_state(index_dir, encoder) == before and entries(index_dir) == listing
    finally:
        index_dir.chmod(0o755)


# --- real mounts, in a private user and mount namespace ---------------------------------


def private_namespace() -> list[str]:
    """The command prefix that runs as root of a new user and mount namespace, or skip the test.

    Root there may mount a tmpfs or a read-only bind mount, seen by nobody else
    and gone when the command ends, without any privilege on the machine.
    """
    unshare = shutil.which("unshare")
    if unshare is None:
        pytest.skip("needs unshare (util-linux) for a private mount namespace")
    command = [unshare, "--user", "--map-root-user", "--mount"]
    probe = subprocess.run([*command, "true"], capture_output=True, text=True, check=False)
    if probe.returncode != 0:
        pytest.skip(f"cannot make a private mount namespace here: {probe.stderr.strip()}")
    return command


def test_build_on_a_read_only_mount_fails_and_the_index_still_reads(
    small_copy: tuple[Path, Path], encoder: Encoder
) -> None:
    seeds_dir, index_dir = small_copy
    before, listing = live_state(index_dir, encoder), entries(index_dir)
    (seeds_dir / "beta.txt").unlink()  # something to write, nothing to embed
    read_only = 'mount --bind "$1" "$1" && mount -o remount,bind,ro "$1" && shift && exec "$@"'
    python_m_qa = [*private_namespace(), "sh", "-c", read_only, "sh", str(index_dir), sys.executable, "-m", "qa"]

    def run_read_only(*argv: str) -> subprocess.CompletedProcess[str]:
        command = [*python_m_qa, *argv, "--index", str(index_dir), "--seeds", str(seeds_dir)]
        return subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=BOUND, check=False)

    built = run_read_only("build")
    assert built.returncode == 1 and built.stdout == "", built.stderr
    assert_one_line_error(built.stderr, cannot_write(index_dir, errno.EROFS))
    info = run_read_only("info")
    assert info.returncode == 0, info.stderr
    assert f"index:     {index_dir}" in info.stdout and "stale:     yes" in info.stdout
    assert live_state(index_dir, encoder) == before and entries(index_dir) == listing


# Inside the namespace: mount a small tmpfs, copy the index onto it, fill it, then
# build again and again with one more free page each time until a build fits.
# Every round before that runs out of space one step further into writing.
FULL_DISK = """
import json, os, shutil, subprocess, sys
from pathlib import Path
sys.path.insert(0, sys.argv[1])
from qa.indexing import build_index
from qa.embed.encoder import Encoder
from qa.errors import IndexWriteError
from qa.reader.index import load_index
from qa.storage.layout import POINTER

seeds, prebuilt, disk = (Path(arg) for arg in sys.argv[2:5])
subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(disk)], check=True)
index = disk / "index"
shutil.copytree(prebuilt, index)
encoder = Encoder()

def state():
    return sorted(p.name for p in index.iterdir()), (index / POINTER).read_text(), load_index(index, encoder).manifest

before = state()
filler = os.open(disk / "filler", os.O_WRONLY | os.O_CREAT)
try:
    while True:
        os.write(filler, bytes(4096))
except OSError as error:
    assert error.errno == 28, error
size = os.fstat(filler).st_size
rounds = []
for pages in range(100):
    os.ftruncate(filler, size - pages * 4096)
    try:
        built = build_index(seeds, index, encoder)
    except IndexWriteError as error:
        rounds.append({"error": str(error), "unchanged": state() == before})
        continue
    rounds.append({"built": built.path.name, "live": load_index(index, encoder).path.name})
    break
print(json.dumps(rounds))
"""


def test_build_on_a_full_disk_fails_cleanly_at_every_step(small_copy: tuple[Path, Path], tmp_path: Path) -> None:
    seeds_dir, index_dir = small_copy
    disk = tmp_path / "disk"
    disk.mkdir()
    command = [*private_namespace(), sys.executable, "-c", FULL_DISK, str(REPO), str(seeds_dir), str(index_dir), str(disk)]
    result = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=BOUND, check=False)
    assert result.returncode == 0, result.stderr
    *failures, success = json.loads(result.stdout)
    # One failure for each file or step the growing free space reaches in turn.
    assert len(failures) >= 5, failures
    for failure in failures:
        assert failure == {"error": cannot_write(disk / "index", errno.ENOSPC), "unchanged": True}
    assert success["built"] == success["live"]
