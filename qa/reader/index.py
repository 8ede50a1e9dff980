"""A loaded index and how it is loaded, checked against its manifest (qa/storage/layout.py has the files)."""

from __future__ import annotations

import logging
from functools import cached_property
from pathlib import Path

import numpy as np

from qa.config import StoreSettings
from qa.embed.encoder import Encoder
from qa.errors import IndexCorruptError, ModelMismatchError, StoreMismatchError
from qa.ingest.seeds import source_hashes
from qa.records import BuildReport
from qa.storage.layout import (
    MANIFEST,
    REBUILD_HINT,
    build_files,
    data_files,
    read_live_manifest,
    read_texts,
    store_file,
    verify_files,
)
from qa.storage.lexical import Bm25Part, LexicalIndex
from qa.storage.manifest import Manifest, SegmentEntry, SkippedEntry, SourceEntry, StoreEntry
from qa.storage.segments import SEGMENTS, STORES, WINDOWS, touched_since
from qa.storage.tables import KeyRows, PassageView, SentenceView, Tables, record_key
from qa.storage.vectors import FaissStore, VectorStore
from qa.storage.windows import WindowVectors

logger = logging.getLogger(__name__)


class Index:
    """A loaded build: record columns, vector stores and BM25, ready to search."""

    def __init__(
        self,
        path: Path,
        manifest: Manifest,
        encoder: Encoder,
        tables: Tables,
        stores: dict[str, VectorStore],
        windows: WindowVectors,
        lexical: dict[str, LexicalIndex] | None = None,
    ) -> None:
        self.path = path
        self.manifest = manifest
        self.encoder = encoder
        self.tables = tables
        self.texts = tables.texts
        # Records are made on access from the columns (qa/storage/tables.py).
        self.sentences = SentenceView(tables)
        self.passages = PassageView(tables)
        self.stores = stores
        self.sentence_store = stores["sentences"]
        self.passage_store = stores["passages"]
        self.windows = windows
        self._lexical = dict(lexical or {})
        self.report: BuildReport | None = None

    @cached_property
    def sentence_lexical(self) -> LexicalIndex:
        return self._lexical.get("sentences") or LexicalIndex(self.tables.sentence_texts())

    @cached_property
    def passage_lexical(self) -> LexicalIndex:
        return self._lexical.get("passages") or LexicalIndex(self.tables.passage_texts())

    @cached_property
    def sentence_passage_rows(self) -> np.ndarray:
        """For each sentence row, the row of its passage."""
        return self.tables.sentences["passage"].astype(np.int64)

    def passage_sentence_rows(self, passage_row: int) -> np.ndarray:
        """The sentence rows of one passage, in reading order."""
        return self.tables.passage_sentence_rows(passage_row)

    @cached_property
    def sentence_keys(self) -> np.ndarray:
        return record_key(self.tables.sentences["id"])

    @cached_property
    def passage_keys(self) -> np.ndarray:
        return record_key(self.tables.passages["id"])

    @cached_property
    def _sentence_rows(self) -> KeyRows:
        return KeyRows(self.sentence_keys)

    @cached_property
    def _passage_rows(self) -> KeyRows:
        return KeyRows(self.passage_keys)

    def sentence_rows(self, keys: np.ndarray) -> np.ndarray:
        """The sentence row of each vector key (-1 for a key not in this build)."""
        return self._sentence_rows.rows(keys)

    def passage_rows(self, keys: np.ndarray) -> np.ndarray:
        """The passage row of each vector key (-1 for a key not in this build)."""
        return self._passage_rows.rows(keys)

    def source_mask(self, exclude_source: str | None = None, only: frozenset[str] | None = None) -> np.ndarray:
        """True for each sentence row outside `exclude_source` and, when given, inside the sources `only`."""
        return self._mask(self.tables.sentence_source, exclude_source, only)

    def passage_mask(self, exclude_source: str | None = None, only: frozenset[str] | None = None) -> np.ndarray:
        """True for each passage row outside `exclude_source` and, when given, inside the sources `only`."""
        return self._mask(self.tables.passages["source"], exclude_source, only)

    def _mask(self, sources: np.ndarray, exclude_source: str | None, only: frozenset[str] | None) -> np.ndarray:
        # Hiding a source happens only in calibration and a restriction only when
        # asked for; an ordinary search gets an all-True mask without comparing every row.
        allowed = np.ones(len(sources), dtype=bool)
        if only is not None:
            allowed &= np.isin(sources, self.tables.source_numbers(only))
        if exclude_source is not None:
            for number in self.tables.source_numbers([exclude_source]):
                allowed &= sources != number
        return allowed

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


def load_index(
    index_dir: Path, encoder: Encoder, check_segments: bool = True, store: StoreSettings | None = None
) -> Index:
    """Load the live build, checking schema, model, store and every file's checksum.

    `store` says which engine the settings select (default: FAISS files); an
    index whose manifest names another is refused with what to run.

    A build reading the live one to reuse it passes `check_segments=False`:
    then a segment file is checked only if it was modified since its build
    (segments.touched_since). The segments the build keeps are linked into
    the new build with their checksums, and checked whenever that build is
    loaded; those it reads again it checks itself (qa/indexing.py).

    Raises:
        IndexMissingError: there is no index yet.
        IndexCorruptError: a file (CURRENT, the manifest, a data file) is missing, altered or unreadable.
        ModelMismatchError: the index was built with other weights than `encoder`.
        StoreMismatchError: the index keeps its vectors in another store than `store`.
    """
    store = store or StoreSettings()
    build, manifest = read_live_manifest(index_dir)
    built_with, configured = manifest.model, encoder.fingerprint
    if built_with.weights_sha256 != configured.weights_sha256 or built_with.dimension != configured.dimension:
        raise ModelMismatchError(
            f"index built with model {built_with.name} ({built_with.dimension}d), settings say "
            f"{configured.name} ({configured.dimension}d); {REBUILD_HINT}"
        )
    _check_store(build, manifest, store)
    files = build_files(manifest)
    if check_segments:
        verify_files(build, manifest, data_files(manifest))
    else:
        segment_names = data_files(manifest)[len(files) :]
        verify_files(build, manifest, [*files, *touched_since(build, segment_names, build / MANIFEST)])
    try:
        tables = Tables.load(build, read_texts(build, [segment.name for segment in manifest.segments]))
        stores = {name: _load_store(build, name, manifest.stores[name], store) for name in STORES}
        lexical, windows = read_segments(build, manifest, tables)
    except (OSError, ValueError, TypeError, KeyError, RuntimeError) as error:
        raise IndexCorruptError(f"cannot read index at {build} ({error}); {REBUILD_HINT}") from error
    if len(tables.sentences) != len(stores["sentences"]) or len(tables.passages) != len(stores["passages"]):
        raise IndexCorruptError(f"index at {build} holds records and vectors that do not match; {REBUILD_HINT}")
    return Index(build, manifest, encoder, tables, stores, windows, lexical)


def _check_store(build: Path, manifest: Manifest, store: StoreSettings) -> None:
    """Refuse an index whose vectors another store holds than the settings select, saying what to run."""
    in_qdrant = any(entry.kind == "qdrant" for entry in manifest.stores.values())
    if in_qdrant and store.kind != "qdrant":
        raise StoreMismatchError(
            f"index at {build} keeps its vectors in Qdrant; set QA_STORE=qdrant with QA_QDRANT_URL "
            "(or QA_QDRANT_PATH) to serve it, or rebuild it into FAISS files: `python -m qa build --full`"
        )
    if store.kind == "qdrant" and not in_qdrant:
        raise StoreMismatchError(
            f"index at {build} keeps its vectors in FAISS files, and QA_STORE=qdrant; unset QA_STORE to serve "
            "it, or build it into Qdrant: `QA_STORE=qdrant python -m qa build --full`"
        )


def _load_store(build: Path, name: str, entry: StoreEntry, store: StoreSettings) -> VectorStore:
    if entry.kind == "qdrant":
        # Imported only when selected: the default install has no Qdrant client.
        from qa.storage.qdrant import QdrantStore

        return QdrantStore.load(build / store_file(name, entry.kind), store)
    return FaissStore.load(build / store_file(name, entry.kind), entry.trained_on)


def read_lexical(build: Path, segments: list[SegmentEntry], tables: Tables) -> dict[str, LexicalIndex]:
    """The BM25 of these segments (in `build`'s segments/), mapped from their files, joined in row order.

    Raises:
        OSError, ValueError: a file is missing or unreadable, or a segment holds other than its manifest says.
    """
    folders = [build / SEGMENTS / segment.name for segment in segments]
    lexical = {}
    for name, table in (("sentences", tables.sentences), ("passages", tables.passages)):
        parts = [Bm25Part.load(folder / f"{name}.bm25") for folder in folders]
        for part, segment in zip(parts, segments, strict=True):
            if part.size != getattr(segment, name):
                raise ValueError(
                    f"segment {segment.name} holds {part.size} {name}, its manifest says {getattr(segment, name)}"
                )
        lexical[name] = LexicalIndex(parts=parts, part_of_row=table["segment"], part_row=table["segment_row"])
    return lexical


def read_segments(build: Path, manifest: Manifest, tables: Tables) -> tuple[dict[str, LexicalIndex], WindowVectors]:
    """The BM25 and word windows of a build's segments, mapped from their files, joined in row order.

    Raises:
        OSError, ValueError: a file is missing or unreadable, or the records point past a segment's rows.
    """
    folders = [build / SEGMENTS / segment.name for segment in manifest.segments]
    lexical = read_lexical(build, manifest.segments, tables)
    sentences = tables.sentences
    windows = WindowVectors.load(
        [folder / WINDOWS for folder in folders], sentences["windows"], sentences["segment"], sentences["first_window"]
    )
    return lexical, windows
