"""Build (incremental, atomic) and load (checked) the on-disk index.

Layout of the index folder:

    CURRENT              name of the live build folder (replaced atomically)
    build-<id>/          one complete build: manifest.json, sentences.jsonl,
                         passages.jsonl, sentences.faiss, passages.faiss
    .tmp-<id>/           a build in progress; never read, removed by the next build
    .lock                held by the running build

A build writes a new folder beside the live one and then replaces CURRENT in one
rename, so a reader sees either the old build or the new one, never a mix, and a
failed or killed build leaves the old one live.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import logging
import os
import secrets
import shutil
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np

from qa.embed import Encoder
from qa.errors import IndexCorruptError, IndexMissingError, ModelMismatchError, QAError, SeedsError
from qa.ingest import SkippedFile, read_sources, split_document, word_windows
from qa.lexical import LexicalIndex
from qa.schema import Passage, Sentence, Window, content_id
from qa.store import FaissStore, vector_key

logger = logging.getLogger(__name__)

SCHEMA_VERSION = 1
POINTER = "CURRENT"
MANIFEST = "manifest.json"
_DATA_FILES = (
    "sentences.jsonl", "passages.jsonl", "windows.jsonl", "sentences.faiss", "passages.faiss", "windows.faiss",
)
_STORES = ("sentences", "passages", "windows")
_REBUILD = "run `python -m qa build --full`"

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
    full: bool = False


class Index:
    """A loaded build: records, vector stores and BM25, ready to search."""

    def __init__(
        self,
        path: Path,
        manifest: dict[str, Any],
        encoder: Encoder,
        sentences: list[Sentence],
        passages: list[Passage],
        windows: list[Window],
        stores: dict[str, FaissStore],
    ) -> None:
        self.path = path
        self.manifest = manifest
        self.encoder = encoder
        self.sentences = sentences
        self.passages = passages
        self.windows = windows
        self.stores = stores
        self.sentence_store = stores["sentences"]
        self.passage_store = stores["passages"]
        self.window_store = stores["windows"]
        self.sentence_row = {vector_key(s.id): row for row, s in enumerate(sentences)}
        self.passage_row = {p.id: row for row, p in enumerate(passages)}
        self.report: BuildReport | None = None

    @cached_property
    def sentence_lexical(self) -> LexicalIndex:
        return LexicalIndex([s.text for s in self.sentences])

    @cached_property
    def passage_lexical(self) -> LexicalIndex:
        return LexicalIndex([p.text for p in self.passages])

    @cached_property
    def sentence_passage_rows(self) -> np.ndarray:
        """For each sentence row, the row of its passage."""
        return np.asarray([self.passage_row[s.passage_id] for s in self.sentences], dtype=np.int64)

    @cached_property
    def passage_sentence_rows(self) -> list[list[int]]:
        """For each passage row, the rows of its sentences in reading order."""
        rows: list[list[int]] = [[] for _ in self.passages]
        for sentence_row, passage_row in enumerate(self.sentence_passage_rows):
            rows[passage_row].append(sentence_row)
        return rows

    @cached_property
    def window_keys_by_sentence(self) -> list[np.ndarray]:
        """For each sentence row, the keys of its windows (empty for short sentences)."""
        keys: list[list[int]] = [[] for _ in self.sentences]
        for window in self.windows:
            keys[self.sentence_row[vector_key(window.sentence_id)]].append(vector_key(window.id))
        return [np.asarray(row, dtype=np.int64) for row in keys]

    @cached_property
    def window_sentence_row(self) -> dict[int, int]:
        """Window key to the row of the sentence it lies in."""
        return {vector_key(w.id): self.sentence_row[vector_key(w.sentence_id)] for w in self.windows}

    @cached_property
    def sentence_keys(self) -> np.ndarray:
        return _keys(self.sentences)

    @cached_property
    def passage_keys(self) -> np.ndarray:
        return _keys(self.passages)

    @cached_property
    def _sentence_sources(self) -> np.ndarray:
        return np.asarray([s.source for s in self.sentences], dtype=object)

    @cached_property
    def _passage_sources(self) -> np.ndarray:
        return np.asarray([p.source for p in self.passages], dtype=object)

    def source_mask(self, exclude_source: str | None = None) -> np.ndarray:
        """True for each sentence row outside `exclude_source`."""
        return self._sentence_sources != exclude_source

    def passage_mask(self, exclude_source: str | None = None) -> np.ndarray:
        """True for each passage row outside `exclude_source`."""
        return self._passage_sources != exclude_source

    @cached_property
    def passage_row_by_key(self) -> dict[int, int]:
        return {vector_key(p.id): row for row, p in enumerate(self.passages)}

    @property
    def sources(self) -> dict[str, dict[str, Any]]:
        return self.manifest["sources"]

    def stale(self, seeds_dir: Path) -> dict[str, list[str]]:
        """Sources added, changed or removed in seeds_dir since this build."""
        readable, _ = read_sources(seeds_dir)
        current = {f.source: f.sha256 for f in readable}
        return {
            "added": sorted(set(current) - set(self.sources)),
            "changed": sorted(s for s in current if s in self.sources and self.sources[s]["sha256"] != current[s]),
            "removed": sorted(set(self.sources) - set(current)),
        }


def _sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _read_jsonl(path: Path) -> list[dict[str, Any]]:
    with path.open(encoding="utf-8") as handle:
        return [json.loads(line) for line in handle if line.strip()]


def _write_jsonl(path: Path, records: list[Any]) -> None:
    with path.open("w", encoding="utf-8") as handle:
        for record in records:
            handle.write(json.dumps(record.to_dict(), ensure_ascii=False) + "\n")


def _fsync(path: Path) -> None:
    descriptor = os.open(path, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def live_build(index_dir: Path) -> Path:
    """The folder of the live build, or IndexMissingError."""
    pointer = index_dir / POINTER
    if not pointer.is_file():
        raise IndexMissingError(f"no index at {index_dir}; run `python -m qa build` to create it")
    name = pointer.read_text(encoding="utf-8").strip()
    build = index_dir / name
    if not name.startswith("build-") or not build.is_dir():
        raise IndexCorruptError(f"index pointer {pointer} names a missing build {name!r}; {_REBUILD}")
    return build


def read_manifest(index_dir: Path) -> dict[str, Any]:
    """The live build's manifest, without checking its files."""
    path = live_build(index_dir) / MANIFEST
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        raise IndexCorruptError(f"cannot read {path} ({error}); {_REBUILD}") from error


def load_index(index_dir: Path, encoder: Encoder) -> Index:
    """Load the live build, checking schema, model and every file's checksum.

    Raises:
        IndexMissingError: there is no index yet.
        IndexCorruptError: a file is missing, altered or unreadable.
        ModelMismatchError: the index was built with other weights than `encoder`.
    """
    build = live_build(index_dir)
    manifest = read_manifest(index_dir)
    if not isinstance(manifest, dict) or not {"model", "files", "sources", "counts"} <= manifest.keys():
        raise IndexCorruptError(f"index manifest in {build} is incomplete; {_REBUILD}")
    if manifest.get("schema_version") != SCHEMA_VERSION:
        raise IndexCorruptError(
            f"index at {index_dir} has schema {manifest.get('schema_version')}, this version reads "
            f"{SCHEMA_VERSION}; {_REBUILD}"
        )
    built_with, configured = manifest["model"], encoder.fingerprint
    if built_with["weights_sha256"] != configured.weights_sha256 or built_with["dimension"] != configured.dimension:
        raise ModelMismatchError(
            f"index built with model {built_with['name']} ({built_with['dimension']}d), settings say "
            f"{configured.name} ({configured.dimension}d); {_REBUILD}"
        )
    for name in _DATA_FILES:
        path = build / name
        if not path.is_file() or _sha256_file(path) != manifest["files"].get(name):
            raise IndexCorruptError(f"index file {path} is missing or corrupt; {_REBUILD}")
    try:
        sentences = [Sentence(**record) for record in _read_jsonl(build / "sentences.jsonl")]
        passages = [Passage(**record) for record in _read_jsonl(build / "passages.jsonl")]
        windows = [Window(**record) for record in _read_jsonl(build / "windows.jsonl")]
        stores = {name: FaissStore.load(build / f"{name}.faiss") for name in _STORES}
    except (OSError, ValueError, TypeError, RuntimeError) as error:
        raise IndexCorruptError(f"cannot read index at {build} ({error}); {_REBUILD}") from error
    return Index(build, manifest, encoder, sentences, passages, windows, stores)


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
        logger.warning("rebuilding everything: %s", error)
        return None


def _live_name(index_dir: Path) -> set[str]:
    """The live build's folder name, if CURRENT names one: never to be deleted by a build."""
    try:
        return {(index_dir / POINTER).read_text(encoding="utf-8").strip()}
    except OSError:
        return set()


def _remove_leftovers(index_dir: Path, keep: set[str]) -> None:
    """Delete unfinished builds and superseded ones, keeping the names in `keep`."""
    for entry in index_dir.iterdir():
        if entry.name in keep or not entry.name.startswith((".tmp-", "build-")):
            continue
        if entry.is_dir():
            shutil.rmtree(entry, ignore_errors=True)
        else:
            entry.unlink(missing_ok=True)


def build_index(
    seeds_dir: Path, index_dir: Path, encoder: Encoder, full: bool = False, progress: Progress | None = None
) -> Index:
    """Index every readable seed; re-embed only sources that are new or changed unless `full`.

    The new build replaces the live one atomically; on any failure the live one stays.
    """
    with _build_lock(index_dir):
        readable, skipped = read_sources(seeds_dir)
        if not readable:
            raise SeedsError(f"nothing to index in {seeds_dir}: add .txt or .md files")
        live = _live_name(index_dir)
        _remove_leftovers(index_dir, keep=live)
        previous = None if full else _previous_index(index_dir, encoder)
        report = BuildReport(skipped=skipped, full=previous is None)
        old_sources = previous.sources if previous else {}
        unchanged, new_docs = set(), []
        for source_file in readable:
            old = old_sources.get(source_file.source)
            if old is not None and old["sha256"] == source_file.sha256:
                report.unchanged.append(source_file.source)
                unchanged.add(source_file.source)
            else:
                (report.changed if old else report.added).append(source_file.source)
                new_docs.append(split_document(source_file))
        report.removed = sorted(set(old_sources) - {f.source for f in readable})

        records = _reused_records(previous, unchanged)
        stores = _reused_stores(previous, records, encoder.fingerprint.dimension)
        new_records = {
            "sentences": [s for doc in new_docs for s in doc.sentences],
            "passages": [p for doc in new_docs for p in doc.passages],
        }
        new_records["windows"] = [w for s in new_records["sentences"] for w in sentence_windows(s)]
        texts = {
            "sentences": [s.text for s in new_records["sentences"]],
            "passages": [p.text for p in new_records["passages"]],
            "windows": [_window_text(w, s) for s in new_records["sentences"] for w in sentence_windows(s)],
        }
        vectors = encoder.encode([text for name in _STORES for text in texts[name]], progress)
        offset = 0
        for name in _STORES:
            count = len(new_records[name])
            stores[name].add(_keys(new_records[name]), vectors[offset : offset + count])
            records[name] += new_records[name]
            offset += count
        report.embedded_sentences = len(new_records["sentences"])
        report.embedded_passages = len(new_records["passages"])

        manifest = _manifest(encoder, {f.source: f.sha256 for f in readable}, records)
        build = _write_build(index_dir, manifest, records, stores)
        _remove_leftovers(index_dir, keep={build.name} | live)
        index = Index(build, manifest, encoder, records["sentences"], records["passages"], records["windows"], stores)
        index.report = report
        return index


def sentence_windows(sentence: Sentence) -> list[Window]:
    """The windows of a long sentence, with ids from the sentence id and their position."""
    return [
        Window(content_id("window", sentence.id, str(number)), sentence.id, sentence.start + start, sentence.start + end)
        for number, (start, end) in enumerate(word_windows(sentence.text, 0, len(sentence.text)))
    ]


def _window_text(window: Window, sentence: Sentence) -> str:
    return sentence.text[window.start - sentence.start : window.end - sentence.start]


def _keys(records: list[Any]) -> np.ndarray:
    return np.asarray([vector_key(r.id) for r in records], dtype=np.int64)


def _reused_records(previous: Index | None, sources: set[str]) -> dict[str, list[Any]]:
    """The previous build's records of the given (unchanged) sources."""
    if previous is None:
        return {name: [] for name in _STORES}
    sentences = [s for s in previous.sentences if s.source in sources]
    kept = {s.id for s in sentences}
    return {
        "sentences": sentences,
        "passages": [p for p in previous.passages if p.source in sources],
        "windows": [w for w in previous.windows if w.sentence_id in kept],
    }


def _reused_stores(previous: Index | None, records: dict[str, list[Any]], dimension: int) -> dict[str, FaissStore]:
    """Fresh stores holding the reused records' vectors, copied from the previous build."""
    stores = {name: FaissStore(dimension) for name in _STORES}
    if previous is not None:
        for name in _STORES:
            keys = _keys(records[name])
            stores[name].add(keys, previous.stores[name].vectors(keys))
    return stores


def _manifest(encoder: Encoder, hashes: dict[str, str], records: dict[str, list[Any]]) -> dict[str, Any]:
    per_source = {name: {"sha256": hashes[name], "passages": 0, "sentences": 0} for name in sorted(hashes)}
    for kind in ("passages", "sentences"):
        for record in records[kind]:
            per_source[record.source][kind] += 1
    return {
        "schema_version": SCHEMA_VERSION,
        "model": encoder.fingerprint.to_dict(),
        "built_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "counts": {
            "sources": len(hashes),
            "passages": len(records["passages"]),
            "sentences": len(records["sentences"]),
            "windows": len(records["windows"]),
        },
        "sources": per_source,
    }


def _write_build(
    index_dir: Path, manifest: dict[str, Any], records: dict[str, list[Any]], stores: dict[str, FaissStore]
) -> Path:
    """Write a complete build beside the live one, then point CURRENT at it."""
    token = time.strftime("%Y%m%d%H%M%S", time.gmtime()) + "-" + secrets.token_hex(4)
    temporary = index_dir / f".tmp-{token}"
    temporary.mkdir()
    for name in _STORES:
        _write_jsonl(temporary / f"{name}.jsonl", records[name])
        stores[name].save(temporary / f"{name}.faiss")
    manifest["files"] = {name: _sha256_file(temporary / name) for name in _DATA_FILES}
    (temporary / MANIFEST).write_text(json.dumps(manifest, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    for name in (*_DATA_FILES, MANIFEST):
        _fsync(temporary / name)
    build = index_dir / f"build-{token}"
    temporary.rename(build)
    pointer_tmp = index_dir / f".tmp-{token}.pointer"
    pointer_tmp.write_text(build.name + "\n", encoding="utf-8")
    _fsync(pointer_tmp)
    os.replace(pointer_tmp, index_dir / POINTER)
    _fsync(index_dir)
    return build
