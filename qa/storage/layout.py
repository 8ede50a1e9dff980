"""The index folder on disk: its layout, the CURRENT pointer, and writing a build atomically.

Layout of the index folder:

    CURRENT              the live build folder's name, then its manifest's sha256
                         (two lines, replaced atomically)
    build-<id>/          one complete build: manifest.json (with a sha256 per file);
                         passages.npy, sentences.npy and sources.json, the records
                         as columns (qa/storage/tables.py); sentences.faiss and
                         passages.faiss, the vectors; segments/<name>/, each
                         segment's BM25 for sentences and paragraphs, word
                         window vectors (float16) and the texts its sources were
                         indexed from (qa/storage/segments.py)
    .tmp-<id>/           a build in progress; never read; removed when the build fails,
                         or by the next build when it was killed
    .lock                held by the running build
    qdrant-collections.json  with QA_STORE=qdrant: the collections builds of this
                         folder began (qa/storage/qdrant.py)

So CURRENT checks the manifest and the manifest checks every data file: a
damaged or truncated file anywhere is found on load (qa/reader/index.py), not read as
data. A build (qa/indexing.py) writes a new folder beside the live one and then
replaces CURRENT in one rename, so a reader sees either the old build or the
new one, never a mix.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import logging
import os
import re
import secrets
import shutil
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from qa.checksums import sha256_file
from qa.errors import IndexCorruptError, IndexLockedError, IndexMissingError, QAError
from qa.storage.manifest import SCHEMA_VERSION, Manifest
from qa.storage.segments import SEGMENTS, STORES, TEXTS, link_files, segment_files
from qa.storage.tables import TABLE_FILES, Tables
from qa.storage.vectors import VectorStore

logger = logging.getLogger(__name__)

POINTER = "CURRENT"
MANIFEST = "manifest.json"
# The files of every build whose vectors FAISS holds, beside its segments' (data_files).
BUILD_FILES = (*TABLE_FILES, *(f"{name}.faiss" for name in STORES))


def store_file(name: str, kind: str) -> str:
    """The file of a build that holds store `name` (FAISS's index), or names its Qdrant collection."""
    return f"{name}.qdrant.json" if kind.split(" ")[0] == "qdrant" else f"{name}.faiss"


def build_files(manifest: Manifest) -> list[str]:
    """The files of a build with this manifest, beside its segments'."""
    return [*TABLE_FILES, *(store_file(name, manifest.stores[name].kind) for name in STORES)]


REBUILD_HINT = "run `python -m qa build --full`"
# A build folder's name as qa/indexing.py makes it: never a path that leads elsewhere.
_BUILD_NAME = re.compile(r"build-[0-9A-Za-z-]+")
_SHA256 = re.compile(r"[0-9a-f]{64}")
_MANIFEST_KEYS = {"model", "files", "sources", "counts"}


def data_files(manifest: Manifest) -> list[str]:
    """Every data file a build with this manifest holds, as paths inside its folder."""
    return [*build_files(manifest), *(name for segment in manifest.segments for name in segment_files(segment.name))]


def verify_files(build: Path, manifest: Manifest, names: list[str]) -> None:
    """Check that these files of `build` are there with the checksums its manifest lists.

    Raises:
        IndexCorruptError: one is missing or altered (the message names it).
    """
    for name in names:
        path = build / name
        if not path.is_file() or sha256_file(path) != manifest.files.get(name):
            raise IndexCorruptError(f"index file {path} is missing or corrupt; {REBUILD_HINT}")


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    with path.open(encoding="utf-8") as handle:
        return [json.loads(line) for line in handle if line.strip()]


@dataclass(frozen=True)
class Pointer:
    """What CURRENT says: the live build folder and the sha256 of its manifest.

    `manifest_sha256` is None for a CURRENT written before the checksum was
    recorded (one line); such a manifest is read unchecked, as it was then.
    """

    build: Path
    manifest_sha256: str | None


def pointer_text(build_name: str, manifest: bytes) -> str:
    """What a build writes to CURRENT to make `build_name`, with this manifest, the live build."""
    return f"{build_name}\n{hashlib.sha256(manifest).hexdigest()}\n"


def read_pointer(index_dir: Path) -> Pointer:
    """What CURRENT says, checked to name a build folder that exists.

    Raises:
        IndexMissingError: there is no CURRENT: no build has finished.
        IndexCorruptError: CURRENT cannot be read, is garbled or names a missing build.
    """
    pointer = index_dir / POINTER
    if not pointer.is_file():
        raise IndexMissingError(f"no index at {index_dir}; run `python -m qa build` to create it")
    try:
        lines = pointer.read_text(encoding="utf-8").removesuffix("\n").split("\n")
    except (OSError, ValueError) as error:
        raise IndexCorruptError(f"cannot read index pointer {pointer} ({error}); {REBUILD_HINT}") from error
    # Parsed strictly (no strip, no other line breaks), so that a changed byte never goes unnoticed.
    name, checksum = lines[0], lines[1] if len(lines) > 1 else None
    if len(lines) > 2 or not _BUILD_NAME.fullmatch(name) or (checksum is not None and not _SHA256.fullmatch(checksum)):
        raise IndexCorruptError(f"index pointer {pointer} is garbled (not a build name and a sha256); {REBUILD_HINT}")
    if not (index_dir / name).is_dir():
        raise IndexCorruptError(f"index pointer {pointer} names a missing build {name!r}; {REBUILD_HINT}")
    return Pointer(index_dir / name, checksum)


def live_build(index_dir: Path) -> Path:
    """The folder of the live build (see read_pointer for the errors)."""
    return read_pointer(index_dir).build


def read_live_manifest(index_dir: Path) -> tuple[Path, Manifest]:
    """The live build and its manifest, read through one reading of CURRENT.

    One reading, so a build that swaps CURRENT meanwhile cannot pair this
    build's folder with the next one's manifest.

    Raises:
        IndexMissingError: there is no index yet.
        IndexCorruptError: the manifest is unreadable, altered, incomplete or of another schema.
    """
    pointer = read_pointer(index_dir)
    path = pointer.build / MANIFEST
    try:
        data = path.read_bytes()
    except OSError as error:
        raise IndexCorruptError(f"cannot read index manifest {path} ({error}); {REBUILD_HINT}") from error
    if pointer.manifest_sha256 is not None and hashlib.sha256(data).hexdigest() != pointer.manifest_sha256:
        raise IndexCorruptError(
            f"index manifest {path} is corrupt (its sha256 differs from the one in {index_dir / POINTER}); "
            f"{REBUILD_HINT}"
        )
    try:
        raw = json.loads(data.decode("utf-8"))
    except ValueError as error:
        raise IndexCorruptError(f"cannot read index manifest {path} ({error}); {REBUILD_HINT}") from error
    complete = isinstance(raw, dict) and raw.keys() >= _MANIFEST_KEYS
    if not complete or not all(isinstance(raw[key], dict) for key in _MANIFEST_KEYS):
        raise IndexCorruptError(f"index manifest {path} is incomplete; {REBUILD_HINT}")
    # Checked before the fields are read: another schema may lay them out differently.
    if raw.get("schema_version") != SCHEMA_VERSION:
        raise IndexCorruptError(
            f"index at {index_dir} has schema {raw.get('schema_version')}, this version reads "
            f"{SCHEMA_VERSION}; {REBUILD_HINT}"
        )
    try:
        return pointer.build, Manifest.from_dict(raw)
    except (KeyError, TypeError, ValueError, AttributeError) as error:
        raise IndexCorruptError(f"index manifest {path} is incomplete ({error!r}); {REBUILD_HINT}") from error


def read_manifest(index_dir: Path) -> Manifest:
    """The live build's manifest, checked against CURRENT but without checking the data files."""
    return read_live_manifest(index_dir)[1]


def read_texts(build: Path, segments: list[str] | None = None) -> dict[str, str]:
    """The texts the sources of a build folder were indexed from (default: every segment its manifest lists).

    Segments are read in the manifest's order, oldest first, so a source
    changed since an older segment was written gets its text from the newest
    one: the old text stays in the older segment's file until it is merged.

    Raises:
        OSError, ValueError, KeyError: the manifest or a texts file is missing or unreadable.
    """
    if segments is None:
        listed = json.loads((build / MANIFEST).read_text(encoding="utf-8"))["segments"]
        segments = [str(segment["name"]) for segment in listed]
    paths = [build / SEGMENTS / name / TEXTS for name in segments]
    return {record["source"]: record["text"] for path in paths for record in read_jsonl(path)}


def write_jsonl(path: Path, rows: Iterable[dict[str, Any]]) -> None:
    with path.open("w", encoding="utf-8") as handle:
        for row in rows:
            handle.write(json.dumps(row, ensure_ascii=False) + "\n")


def _fsync(path: Path) -> None:
    descriptor = os.open(path, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


@contextmanager
def build_lock(index_dir: Path) -> Iterator[None]:
    """Hold the index folder's build lock for the block.

    Raises:
        IndexLockedError: another build, in this process or another, holds it.
    """
    index_dir.mkdir(parents=True, exist_ok=True)
    with (index_dir / ".lock").open("w") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError as error:
            raise IndexLockedError(f"another build is running on {index_dir}; wait for it to finish") from error
        yield


def live_name(index_dir: Path) -> str | None:
    """The live build's folder name, or None when CURRENT is missing or damaged."""
    try:
        return live_build(index_dir).name
    except QAError:
        return None


def _remove(path: Path) -> None:
    """Delete a file or folder; a symlink itself, never what it leads to. Logs, never raises."""
    try:
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        else:
            path.unlink(missing_ok=True)
    except OSError as error:
        # Leftovers cost only space, and the next build tries again.
        logger.warning("could not remove %s (%s)", path, error.strerror or error)


def remove_leftovers(index_dir: Path, live: str | None, keep: str | None = None) -> None:
    """Delete unfinished builds and superseded ones: all but `live` and `keep`.

    With no live build known (CURRENT missing or damaged), build folders stay:
    any of them may be the one CURRENT named, to be restored by hand.
    """
    try:
        entries = list(index_dir.iterdir())
    except OSError as error:
        logger.warning("could not list %s (%s)", index_dir, error.strerror or error)
        return
    for entry in entries:
        unfinished = entry.name.startswith(".tmp-")
        superseded = entry.name.startswith("build-") and live is not None and entry.name not in (live, keep)
        if unfinished or superseded:
            _remove(entry)


class BuildWriter:
    """One build being written, in a temporary folder beside the live build, until commit() makes it live.

    Used as a context manager: if anything fails before the commit ends, what
    this build wrote is removed at once (on a full disk the space comes back)
    and CURRENT still names the previous build.
    """

    def __init__(self, index_dir: Path) -> None:
        self.index_dir = index_dir
        self.token = time.strftime("%Y%m%d%H%M%S", time.gmtime()) + "-" + secrets.token_hex(4)
        self.folder = index_dir / f".tmp-{self.token}"
        self.build = index_dir / f"build-{self.token}"
        self._pointer = index_dir / f".tmp-{self.token}.pointer"
        # Files linked from the previous build, with the checksums its manifest lists.
        self._linked: dict[str, str] = {}

    def __enter__(self) -> BuildWriter:
        self.folder.mkdir()
        return self

    def __exit__(self, kind: type[BaseException] | None, *_: object) -> None:
        if kind is None:
            return
        live = live_name(self.index_dir)
        for path in (self.folder, self.build, self._pointer):
            if path.name != live and (path.exists() or path.is_symlink()):
                _remove(path)

    def path(self, name: str) -> Path:
        """Where file `name` of this build goes (its folder made)."""
        path = self.folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        return path

    def link(self, build: Path, manifest: Manifest, names: list[str]) -> None:
        """Take these files of another build as they are, with the checksums its manifest lists."""
        link_files(build, self.folder, names)
        self._linked.update({name: manifest.files[name] for name in names})

    def commit(self, manifest: Manifest, tables: Tables, stores: dict[str, VectorStore]) -> tuple[Path, Manifest]:
        """Write the records and stores beside what is written already, then the manifest; point CURRENT here.

        Returns:
            The build folder, and the manifest as written (with its files' checksums).
        """
        tables.save(self.folder)
        # Hashed as they are written: a million sentences' stores are half a gigabyte.
        store_files = {name: store_file(name, stores[name].kind) for name in STORES}
        known = {store_files[name]: stores[name].save(self.folder / store_files[name]) for name in STORES}
        # Linked files keep the checksum they were written with: a damaged one is found when the build is loaded.
        known.update(self._linked)
        names = data_files(manifest)
        files = {name: known.get(name) or sha256_file(self.folder / name) for name in names}
        manifest = manifest.with_files(files)
        manifest_bytes = (json.dumps(manifest.to_dict(), indent=2, ensure_ascii=False) + "\n").encode("utf-8")
        (self.folder / MANIFEST).write_bytes(manifest_bytes)
        written = [name for name in names if name not in self._linked]
        folders = {str(folder) for name in names for folder in Path(name).parents}
        for name in (*written, MANIFEST, *sorted(folders)):
            _fsync(self.folder / name)
        self.folder.rename(self.build)
        self._pointer.write_text(pointer_text(self.build.name, manifest_bytes), encoding="utf-8")
        _fsync(self._pointer)
        os.replace(self._pointer, self.index_dir / POINTER)
        try:
            _fsync(self.index_dir)
        except OSError as error:
            # The new build is live already; only its surviving a power cut is in doubt.
            logger.warning("could not sync %s (%s)", self.index_dir, error.strerror or error)
        return self.build, manifest
