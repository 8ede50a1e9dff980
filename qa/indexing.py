"""Build the index: incremental (only new and changed sources are embedded), atomic, locked.

A build writes a new folder beside the live one and then replaces CURRENT in one
rename, so a reader sees either the old build or the new one, never a mix, and a
failed or killed build leaves the old one live (qa/storage/layout.py writes the files).
A failed build removes what it wrote; a killed one leaves it to the next build.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

from qa.config import DEFAULT_MAX_FILE_MB
from qa.embed.encoder import Encoder
from qa.errors import IndexMissingError, IndexWriteError, QAError, SeedsError
from qa.ingest.seeds import FORMATS_HINT, SourceFile, read_sources
from qa.reader.index import Index, load_index, record_keys
from qa.records import BuildReport, Document, Sentence, SkippedFile, Window, content_id
from qa.split import split_document, word_windows
from qa.storage import layout
from qa.storage.layout import STORES, read_manifest
from qa.storage.manifest import SCHEMA_VERSION, Counts, Manifest, SkippedEntry, SourceEntry
from qa.storage.vectors import FaissStore

logger = logging.getLogger(__name__)

Progress = Callable[[int, int], None]


def _previous_index(index_dir: Path, encoder: Encoder) -> Index | None:
    """The live index to reuse vectors from, or None when it cannot be reused."""
    try:
        return load_index(index_dir, encoder)
    except IndexMissingError:
        return None
    except QAError as error:
        logger.warning("cannot reuse the live index, so every document is embedded again: %s", error)
        return None


def _live_sources(index_dir: Path) -> dict[str, SourceEntry]:
    """Sources of the live build as its manifest lists them, to report what changed since."""
    try:
        return read_manifest(index_dir).sources
    except QAError:
        return {}


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
        with layout.build_lock(index_dir):
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
    live = layout.live_name(index_dir)
    layout.remove_leftovers(index_dir, live)
    previous = None if full else _previous_index(index_dir, encoder)
    report = BuildReport(skipped=skipped, full=previous is None)
    old_sources = _live_sources(index_dir)
    unchanged, new_docs = set(), []
    for source_file in readable:
        old = old_sources.get(source_file.source)
        same = old is not None and old.sha256 == source_file.sha256
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
    manifest = _manifest(encoder, readable, records, skipped, max_file_mb)
    build, manifest = layout.write_build(index_dir, manifest, records, stores, texts)
    layout.remove_leftovers(index_dir, build.name, keep=live)
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
        Window(
            content_id("window", sentence.id, str(number)), sentence.id, sentence.start + start, sentence.start + end
        )
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


def _manifest(
    encoder: Encoder,
    readable: list[SourceFile],
    records: dict[str, list[Any]],
    skipped: list[SkippedFile],
    max_file_mb: float,
) -> Manifest:
    """The new build's manifest, before its files' checksums are known.

    It records the size limit so that Index.stale judges the seeds by the same one.
    """
    counted = {kind: Counter(record.source for record in records[kind]) for kind in ("passages", "sentences")}
    sources = {
        f.source: SourceEntry(
            f.sha256,
            f.format,
            f.title,
            len(f.pages) or None,
            counted["passages"][f.source],
            counted["sentences"][f.source],
        )
        for f in sorted(readable, key=lambda f: f.source)
    }
    return Manifest(
        schema_version=SCHEMA_VERSION,
        model=encoder.fingerprint,
        built_at=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        counts=Counts(len(sources), len(records["passages"]), len(records["sentences"]), len(records["windows"])),
        sources=sources,
        skipped={f.source: SkippedEntry(f.sha256, f.reason, f.duplicate_of) for f in skipped},
        max_file_mb=max_file_mb,
    )
