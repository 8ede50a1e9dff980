"""Build the index: incremental (only new and changed sources are embedded), atomic, locked.

A build writes a new folder beside the live one and then replaces CURRENT in one
rename, so a reader sees either the old build or the new one, never a mix, and a
failed or killed build leaves the old one live (see qa/index.py for the layout).
A failed build removes what it wrote; a killed one leaves it to the next build.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import secrets
import shutil
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from qa.config import DEFAULT_MAX_FILE_MB
from qa.embed import Encoder
from qa.errors import IndexMissingError, IndexWriteError, QAError, SeedsError
from qa.index import (
    DATA_FILES,
    MANIFEST,
    POINTER,
    SCHEMA_VERSION,
    STORES,
    TEXTS,
    Index,
    live_build,
    load_index,
    pointer_text,
    read_manifest,
    record_keys,
    sha256_file,
)
from qa.ingest import FORMATS_HINT, SkippedFile, SourceFile, read_sources
from qa.schema import Document, Sentence, Window, content_id
from qa.split import split_document, word_windows
from qa.store import FaissStore

logger = logging.getLogger(__name__)

Progress = Callable[[int, int], None]


@dataclass
class BuildReport:
    """What a build did, per source."""

    added: list[str] = field(default_factory=list)
    changed: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    skipped: list[SkippedFile] = field(default_factory=list)
    embedded_sentences: int = 0
    embedded_passages: int = 0
    embedded_windows: int = 0
    full: bool = False


def _write_jsonl(path: Path, rows: Iterable[dict[str, Any]]) -> None:
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
def _build_lock(index_dir: Path) -> Iterator[None]:
    index_dir.mkdir(parents=True, exist_ok=True)
    with (index_dir / ".lock").open("w") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError as error:
            raise QAError(f"another build is running on {index_dir}; wait for it to finish") from error
        yield


def _previous_index(index_dir: Path, encoder: Encoder) -> Index | None:
    """The live index to reuse vectors from, or None when it cannot be reused."""
    try:
        return load_index(index_dir, encoder)
    except IndexMissingError:
        return None
    except QAError as error:
        logger.warning("cannot reuse the live index, so every document is embedded again: %s", error)
        return None


def _live_sources(index_dir: Path) -> dict[str, Any]:
    """Sources of the live build as its manifest lists them, to report what changed since."""
    try:
        return read_manifest(index_dir)["sources"]
    except QAError:
        return {}


def _live_name(index_dir: Path) -> str | None:
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


def _remove_leftovers(index_dir: Path, live: str | None, keep: str | None = None) -> None:
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


def build_index(
    seeds_dir: Path,
    index_dir: Path,
    encoder: Encoder,
    full: bool = False,
    progress: Progress | None = None,
    max_file_mb: float = DEFAULT_MAX_FILE_MB,
) -> Index:
    """Index every readable seed; re-embed only sources that are new or changed unless `full`.

    The new build replaces the live one atomically; on any failure the live one stays.
    Seed files over max_file_mb (MiB) are skipped unread.

    Raises:
        SeedsError: nothing in seeds_dir can be indexed.
        IndexWriteError: the index folder cannot be written (read-only, disk full).
        QAError: another build holds the lock.
    """
    try:
        with _build_lock(index_dir):
            return _build_locked(seeds_dir, index_dir, encoder, full, progress, max_file_mb)
    except OSError as error:
        raise IndexWriteError(
            f"could not write the index in {index_dir} ({error.strerror or error}); the previous index is unchanged"
        ) from error


def _build_locked(
    seeds_dir: Path, index_dir: Path, encoder: Encoder, full: bool, progress: Progress | None, max_file_mb: float
) -> Index:
    readable, skipped = read_sources(seeds_dir, max_file_mb)
    if not readable:
        raise SeedsError(f"nothing to index in {seeds_dir}: {FORMATS_HINT}")
    live = _live_name(index_dir)
    _remove_leftovers(index_dir, live)
    previous = None if full else _previous_index(index_dir, encoder)
    report = BuildReport(skipped=skipped, full=previous is None)
    old_sources = _live_sources(index_dir)
    unchanged, new_docs = set(), []
    for source_file in readable:
        old = old_sources.get(source_file.source)
        same = old is not None and old.get("sha256") == source_file.sha256
        (report.unchanged if same else report.changed if old else report.added).append(source_file.source)
        if same and previous is not None:
            unchanged.add(source_file.source)
        else:
            new_docs.append(split_document(source_file))
    report.removed = sorted(set(old_sources) - {f.source for f in readable})

    records = _reused_records(previous, unchanged)
    stores = _reused_stores(previous, records, encoder.fingerprint.dimension)
    new_records = _embed_documents(new_docs, encoder, stores, progress)
    for name in STORES:
        records[name] += new_records[name]
    report.embedded_sentences = len(new_records["sentences"])
    report.embedded_passages = len(new_records["passages"])
    report.embedded_windows = len(new_records["windows"])

    # Reused records point into the text they were split from, kept from the
    # previous build even if today's extractor would lay the file out differently.
    texts = {source: previous.source_text(source) for source in unchanged} if previous else {}
    texts.update((doc.source, doc.text) for doc in new_docs)
    manifest = _manifest(encoder, readable, records)
    manifest["skipped"] = {
        f.source: {"sha256": f.sha256, "reason": f.reason, "duplicate_of": f.duplicate_of} for f in skipped
    }
    manifest["max_file_mb"] = max_file_mb  # so Index.stale judges the seeds by the same limit
    build = _write_build(index_dir, manifest, records, stores, texts)
    _remove_leftovers(index_dir, build.name, keep=live)
    index = Index(
        build, manifest, encoder, records["sentences"], records["passages"], records["windows"], stores, texts
    )
    index.report = report
    return index


def _embed_documents(
    documents: list[Document], encoder: Encoder, stores: dict[str, FaissStore], progress: Progress | None
) -> dict[str, list[Any]]:
    """Embed the documents' sentences, passages and windows in one pass; add them to the stores."""
    sentences = [s for doc in documents for s in doc.sentences]
    windows = [(window, sentence) for sentence in sentences for window in sentence_windows(sentence)]
    records: dict[str, list[Any]] = {
        "sentences": sentences,
        "passages": [p for doc in documents for p in doc.passages],
        "windows": [window for window, _ in windows],
    }
    texts = {
        "sentences": [s.text for s in sentences],
        "passages": [p.text for p in records["passages"]],
        "windows": [window_text(window, sentence) for window, sentence in windows],
    }
    vectors = encoder.encode([text for name in STORES for text in texts[name]], progress)
    offset = 0
    for name in STORES:
        count = len(records[name])
        stores[name].add(record_keys(records[name]), vectors[offset : offset + count])
        offset += count
    return records


def sentence_windows(sentence: Sentence) -> list[Window]:
    """The windows of a long sentence, with ids from the sentence id and their position."""
    return [
        Window(content_id("window", sentence.id, str(number)), sentence.id, sentence.start + start, sentence.start + end)
        for number, (start, end) in enumerate(word_windows(sentence.text, 0, len(sentence.text)))
    ]


def window_text(window: Window, sentence: Sentence) -> str:
    """The words of a window, sliced from its sentence."""
    return sentence.text[window.start - sentence.start : window.end - sentence.start]


def _reused_records(previous: Index | None, sources: set[str]) -> dict[str, list[Any]]:
    """The previous build's records of the given (unchanged) sources."""
    if previous is None:
        return {name: [] for name in STORES}
    sentences = [s for s in previous.sentences if s.source in sources]
    kept = {s.id for s in sentences}
    return {
        "sentences": sentences,
        "passages": [p for p in previous.passages if p.source in sources],
        "windows": [w for w in previous.windows if w.sentence_id in kept],
    }


def _reused_stores(previous: Index | None, records: dict[str, list[Any]], dimension: int) -> dict[str, FaissStore]:
    """Fresh stores holding the reused records' vectors, copied from the previous build."""
    stores = {name: FaissStore(dimension) for name in STORES}
    if previous is not None:
        for name in STORES:
            keys = record_keys(records[name])
            stores[name].add(keys, previous.stores[name].vectors(keys))
    return stores


def _manifest(encoder: Encoder, readable: list[SourceFile], records: dict[str, list[Any]]) -> dict[str, Any]:
    per_source = {
        f.source: {"sha256": f.sha256, "format": f.format, "title": f.title, "pages": len(f.pages) or None,
                   "passages": 0, "sentences": 0}
        for f in sorted(readable, key=lambda f: f.source)
    }
    for kind in ("passages", "sentences"):
        for record in records[kind]:
            per_source[record.source][kind] += 1
    return {
        "schema_version": SCHEMA_VERSION,
        "model": encoder.fingerprint.to_dict(),
        "built_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "counts": {
            "sources": len(per_source),
            "passages": len(records["passages"]),
            "sentences": len(records["sentences"]),
            "windows": len(records["windows"]),
        },
        "sources": per_source,
    }


def _write_build(
    index_dir: Path,
    manifest: dict[str, Any],
    records: dict[str, list[Any]],
    stores: dict[str, FaissStore],
    texts: dict[str, str],
) -> Path:
    """Write a complete build beside the live one, then point CURRENT at it.

    If any step fails, what this build wrote is removed at once (on a full disk
    the space comes back) and CURRENT still names the previous build.
    """
    token = time.strftime("%Y%m%d%H%M%S", time.gmtime()) + "-" + secrets.token_hex(4)
    temporary, build = index_dir / f".tmp-{token}", index_dir / f"build-{token}"
    pointer_tmp = index_dir / f".tmp-{token}.pointer"
    try:
        temporary.mkdir()
        manifest_bytes = _write_files(temporary, manifest, records, stores, texts)
        temporary.rename(build)
        pointer_tmp.write_text(pointer_text(build.name, manifest_bytes), encoding="utf-8")
        _fsync(pointer_tmp)
        os.replace(pointer_tmp, index_dir / POINTER)
    except BaseException:
        live = _live_name(index_dir)
        for path in (temporary, build, pointer_tmp):
            if path.name != live and (path.exists() or path.is_symlink()):
                _remove(path)
        raise
    try:
        _fsync(index_dir)
    except OSError as error:
        # The new build is live already; only its surviving a power cut is in doubt.
        logger.warning("could not sync %s (%s)", index_dir, error.strerror or error)
    return build


def _write_files(
    folder: Path,
    manifest: dict[str, Any],
    records: dict[str, list[Any]],
    stores: dict[str, FaissStore],
    texts: dict[str, str],
) -> bytes:
    """The data files and the manifest listing their checksums, synced; returns the manifest's bytes."""
    for name in STORES:
        _write_jsonl(folder / f"{name}.jsonl", (record.to_dict() for record in records[name]))
        stores[name].save(folder / f"{name}.faiss")
    _write_jsonl(folder / TEXTS, ({"source": source, "text": texts[source]} for source in sorted(texts)))
    manifest["files"] = {name: sha256_file(folder / name) for name in DATA_FILES}
    manifest_bytes = (json.dumps(manifest, indent=2, ensure_ascii=False) + "\n").encode("utf-8")
    (folder / MANIFEST).write_bytes(manifest_bytes)
    for name in (*DATA_FILES, MANIFEST):
        _fsync(folder / name)
    return manifest_bytes
