"""A loaded index and how it is loaded, checked against its manifest (qa/storage/layout.py has the files)."""

from __future__ import annotations

import logging
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np

from qa.embed.encoder import Encoder
from qa.errors import IndexCorruptError, ModelMismatchError
from qa.ingest.seeds import source_hashes
from qa.records import BuildReport, Passage, Sentence, Window
from qa.storage.layout import (
    DATA_FILES,
    REBUILD_HINT,
    STORES,
    TEXTS,
    read_jsonl,
    read_live_manifest,
    sha256_file,
)
from qa.storage.lexical import LexicalIndex
from qa.storage.manifest import Manifest, SkippedEntry, SourceEntry
from qa.storage.vectors import FaissStore, vector_key

logger = logging.getLogger(__name__)


class Index:
    """A loaded build: records, vector stores and BM25, ready to search."""

    def __init__(
        self,
        path: Path,
        manifest: Manifest,
        encoder: Encoder,
        sentences: list[Sentence],
        passages: list[Passage],
        windows: list[Window],
        stores: dict[str, FaissStore],
        texts: dict[str, str],
    ) -> None:
        self.path = path
        self.texts = texts
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
        return record_keys(self.sentences)

    @cached_property
    def passage_keys(self) -> np.ndarray:
        return record_keys(self.passages)

    @cached_property
    def sentence_sources(self) -> np.ndarray:
        """Each sentence row's source, as an array (masks compare it in one step)."""
        return np.asarray([s.source for s in self.sentences], dtype=object)

    @cached_property
    def passage_sources(self) -> np.ndarray:
        """Each passage row's source, as an array."""
        return np.asarray([p.source for p in self.passages], dtype=object)

    def source_mask(self, exclude_source: str | None = None, only: frozenset[str] | None = None) -> np.ndarray:
        """True for each sentence row outside `exclude_source` and, when given, inside the sources `only`."""
        return _mask(self.sentence_sources, exclude_source, only)

    def passage_mask(self, exclude_source: str | None = None, only: frozenset[str] | None = None) -> np.ndarray:
        """True for each passage row outside `exclude_source` and, when given, inside the sources `only`."""
        return _mask(self.passage_sources, exclude_source, only)

    @cached_property
    def passage_row_by_key(self) -> dict[int, int]:
        return {vector_key(p.id): row for row, p in enumerate(self.passages)}

    @property
    def sources(self) -> dict[str, SourceEntry]:
        return self.manifest.sources

    def source_text(self, source: str) -> str:
        """The text `source` was indexed from; every record's start/end slice it.

        Raises:
            KeyError: the source is not in this index.
        """
        if source not in self.texts:
            raise KeyError(f"{source!r} is not in the index at {self.path}")
        return self.texts[source]

    def stale(self, seeds_dir: Path, max_file_mb: float | None = None) -> dict[str, list[str]]:
        """Sources added, changed or removed in seeds_dir since this build.

        Compares file hashes only, so no PDF or DOCX is parsed; a file the
        build skipped as unreadable is not "added" while its bytes stay the same.
        Files over max_file_mb (default: the limit this index was built with)
        are neither read nor counted, as a build would skip them.
        """
        if max_file_mb is None:
            max_file_mb = self.manifest.max_file_mb
        current = source_hashes(seeds_dir, max_file_mb)
        skipped = self.manifest.skipped
        still_skipped = {s for s, entry in skipped.items() if _skipped_again(s, entry, current)}
        return {
            "added": sorted(set(current) - set(self.sources) - still_skipped),
            "changed": sorted(s for s in current if s in self.sources and self.sources[s].sha256 != current[s]),
            "removed": sorted(set(self.sources) - set(current)),
        }


def _skipped_again(source: str, entry: SkippedEntry, current: dict[str, str]) -> bool:
    """Whether a build now would skip `source` again, as this build did (`entry` from its manifest).

    Its bytes must be unchanged; a duplicate also needs a file that sorts
    before it to hold the same bytes still, or a build would now index it.
    """
    sha256 = current.get(source)
    if sha256 is None or entry.sha256 != sha256:
        return False
    if entry.duplicate_of is None:
        return True
    return any(other < source and current[other] == sha256 for other in current)


def describe_stale(stale: dict[str, list[str]]) -> str:
    """What Index.stale found, as one line ("added: a.txt; changed: b.md"), or "" when nothing."""
    return "; ".join(f"{kind}: {', '.join(names)}" for kind, names in stale.items() if names)


def _mask(sources: np.ndarray, exclude_source: str | None, only: frozenset[str] | None) -> np.ndarray:
    # Hiding a source happens only in calibration and a restriction only when
    # asked for; an ordinary search gets an all-True mask without comparing every row.
    allowed = np.ones(len(sources), dtype=bool)
    if only is not None:
        allowed &= np.isin(sources, list(only))
    if exclude_source is not None:
        allowed &= sources != exclude_source
    return allowed


def load_index(index_dir: Path, encoder: Encoder) -> Index:
    """Load the live build, checking schema, model and every file's checksum.

    Raises:
        IndexMissingError: there is no index yet.
        IndexCorruptError: a file (CURRENT, the manifest, a data file) is missing, altered or unreadable.
        ModelMismatchError: the index was built with other weights than `encoder`.
    """
    build, manifest = read_live_manifest(index_dir)
    built_with, configured = manifest.model, encoder.fingerprint
    if built_with.weights_sha256 != configured.weights_sha256 or built_with.dimension != configured.dimension:
        raise ModelMismatchError(
            f"index built with model {built_with.name} ({built_with.dimension}d), settings say "
            f"{configured.name} ({configured.dimension}d); {REBUILD_HINT}"
        )
    for name in DATA_FILES:
        path = build / name
        if not path.is_file() or sha256_file(path) != manifest.files.get(name):
            raise IndexCorruptError(f"index file {path} is missing or corrupt; {REBUILD_HINT}")
    try:
        sentences = [Sentence(**record) for record in read_jsonl(build / "sentences.jsonl")]
        passages = [Passage(**record) for record in read_jsonl(build / "passages.jsonl")]
        windows = [Window(**record) for record in read_jsonl(build / "windows.jsonl")]
        stores = {name: FaissStore.load(build / f"{name}.faiss") for name in STORES}
        texts = {record["source"]: record["text"] for record in read_jsonl(build / TEXTS)}
    except (OSError, ValueError, TypeError, KeyError, RuntimeError) as error:
        raise IndexCorruptError(f"cannot read index at {build} ({error}); {REBUILD_HINT}") from error
    return Index(build, manifest, encoder, sentences, passages, windows, stores, texts)


def record_keys(records: list[Any]) -> np.ndarray:
    """The int64 vector keys of records, in order."""
    return np.asarray([vector_key(r.id) for r in records], dtype=np.int64)
