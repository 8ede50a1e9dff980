"""Build the index: incremental (only new and changed sources are embedded), atomic, locked.

A build writes a new folder beside the live one and then replaces CURRENT in one
rename, so a reader sees either the old build or the new one, never a mix, and a
failed or killed build leaves the old one live (qa/storage/layout.py writes the files).
A failed build removes what it wrote; a killed one leaves it to the next build.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import cast

import numpy as np

from qa.cluster import Remote
from qa.config import DEFAULT_MAX_FILE_MB, StoreSettings
from qa.embed.documents import EMBED_CHUNK, EmbedHere, NewVectors
from qa.embed.documents import Progress as Progress
from qa.embed.encoder import Encoder
from qa.errors import IndexMissingError, IndexWriteError, QAError, SeedsError
from qa.ingest.seeds import FORMATS_HINT, SourceFile, read_sources
from qa.qdrant_build import ServedBuild
from qa.reader.index import Index, load_index, read_segments
from qa.records import BuildReport, SkippedFile
from qa.split import split_document
from qa.storage import layout, segments
from qa.storage.layout import read_manifest
from qa.storage.lexical import Bm25Part
from qa.storage.manifest import SCHEMA_VERSION, Counts, Manifest, SegmentEntry, SkippedEntry, SourceEntry, StoreEntry
from qa.storage.segments import STORES
from qa.storage.tables import Tables, record_key
from qa.storage.vectors import FaissStore, VectorStore
from qa.storage.windows import WindowWriter

logger = logging.getLogger(__name__)


def _previous_index(index_dir: Path, encoder: Encoder, store: StoreSettings) -> Index | None:
    """The live index to reuse vectors from, or None when it cannot be reused (another model or store)."""
    try:
        return load_index(index_dir, encoder, check_segments=False, store=store)
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
    store: StoreSettings | None = None,
    remote: Remote | None = None,
) -> Index:
    """Index every readable seed; re-embed only sources that are new or changed unless `full`.

    The new build replaces the live one atomically; on any failure the live one stays.
    Seed files over max_file_mb (MiB) are skipped unread. `store` says which
    engine holds the vectors (default: FAISS files in the build); a live
    index in another store is not reused, so switching stores rebuilds in full.
    With `remote` (a Ray
    cluster: qa/cluster/ray_build.py) the new and changed files are hashed
    here but read, split and embedded there; the commit is this one.

    Raises:
        SeedsError: nothing in seeds_dir can be indexed.
        IndexWriteError: the index folder cannot be written (read-only, disk full).
        QAError: another build holds the lock.
    """
    try:
        with layout.build_lock(index_dir):
            return _build_locked(
                seeds_dir, index_dir, encoder, full, progress, max_file_mb, store or StoreSettings(), remote
            )
    except OSError as error:
        raise IndexWriteError(
            f"could not write the index in {index_dir} ({error.strerror or error}); the previous index is unchanged"
        ) from error


def _build_locked(
    seeds_dir: Path,
    index_dir: Path,
    encoder: Encoder,
    full: bool,
    progress: Progress | None,
    max_file_mb: float,
    store: StoreSettings,
    remote: Remote | None = None,
) -> Index:
    live = layout.live_name(index_dir)
    layout.remove_leftovers(index_dir, live)
    old_sources = _live_sources(index_dir)
    previous = None if full else _previous_index(index_dir, encoder, store)
    # Files the live index holds unchanged are hashed, not extracted again.
    reusable = previous.sources if previous is not None else {}
    indexed = {source: entry.sha256 for source, entry in reusable.items()}
    readable, skipped = read_sources(seeds_dir, max_file_mb, indexed, extract=remote is None)
    if not readable:
        raise SeedsError(f"nothing to index in {seeds_dir}: {FORMATS_HINT}")
    plan = _Plan.of(readable, old_sources, previous)
    if plan.previous is None and any(source_file.reused for source_file in readable):
        # The live index cannot be reused after all: everything is extracted and embedded.
        readable, skipped = read_sources(seeds_dir, max_file_mb, extract=remote is None)
        plan = _Plan.of(readable, old_sources, None)
    new: Tables | None = None
    vectors: NewVectors = EmbedHere()
    if remote is not None:  # the new files were read, split and embedded there
        made = remote(plan.new_files, readable, skipped)
        readable, skipped, plan.new_files = made.readable, made.skipped, made.new_files
        new, vectors = made.tables, made.vectors
        if not readable:
            raise SeedsError(f"nothing to index in {seeds_dir}: {FORMATS_HINT}")
    report = BuildReport(skipped=skipped, full=plan.previous is None)
    for source_file in readable:
        same = _same(source_file, old_sources)
        (report.unchanged if same else report.changed if source_file.source in old_sources else report.added).append(
            source_file.source
        )
    report.removed = sorted(set(old_sources) - {f.source for f in readable})

    if new is None:
        # Split one document at a time into columns: a document's records live only while it is added.
        new = Tables.from_documents(split_document(source_file) for source_file in plan.new_files)
    with layout.BuildWriter(index_dir) as writer:
        served = ServedBuild.of(store, writer.token, writer.folder)
        try:
            tables, segment = _write_segments(writer, plan, new, encoder, progress, vectors, served)
            report.embedded_sentences = len(new.sentences)
            report.embedded_passages = len(new.passages)
            manifest = _manifest(
                encoder, readable, tables, skipped, max_file_mb, segment.stores, segment.entries, reusable
            )
            build, manifest = writer.commit(manifest, tables, segment.stores)
        except BaseException:
            if served is not None:
                served.writer.abandon()
            raise
    if served is not None:
        served.publish(build, index_dir / live if live else None)
    layout.remove_leftovers(index_dir, build.name, keep=live)
    lexical, windows = read_segments(build, manifest, tables)
    index = Index(build, manifest, encoder, tables, segment.stores, windows, lexical)
    index.report = report
    return index


@dataclass
class _Plan:
    """What a build reuses: the live index (None for a full build), its kept records and segments, and what is new."""

    previous: Index | None
    kept: Tables
    carried: list[int]
    new_files: list[SourceFile]

    @classmethod
    def of(cls, readable: list[SourceFile], old_sources: dict[str, SourceEntry], previous: Index | None) -> _Plan:
        unchanged = {f.source for f in readable if previous is not None and _same(f, old_sources)}
        if previous is None:
            return cls(None, Tables.empty(), [], list(readable))
        # Reused records point into the text they were split from, kept from the
        # previous build even if today's extractor would lay the file out differently.
        kept = previous.tables.keep_sources(unchanged)
        carried = segments.carried(previous.manifest.segments, kept)
        names = {number: segments.segment_files(entry.name) for number, entry in enumerate(previous.manifest.segments)}
        # The files read again into the new segment are checked first, so a damaged
        # one is never copied under a new checksum (load_index checked those
        # modified since their build already).
        merged = [name for number, files in names.items() if number not in carried for name in files]
        touched = set(segments.touched_since(previous.path, merged, previous.path / layout.MANIFEST))
        try:
            layout.verify_files(previous.path, previous.manifest, [name for name in merged if name not in touched])
        except QAError as error:
            logger.warning("cannot reuse the live index, so every document is embedded again: %s", error)
            return cls(None, Tables.empty(), [], list(readable))
        return cls(previous, kept, carried, [f for f in readable if f.source not in unchanged])


def _same(source_file: SourceFile, old_sources: dict[str, SourceEntry]) -> bool:
    old = old_sources.get(source_file.source)
    return old is not None and old.sha256 == source_file.sha256


@dataclass
class _Segments:
    """What a build wrote of its segments and stores."""

    stores: dict[str, VectorStore]
    entries: list[SegmentEntry]


def _write_segments(
    writer: layout.BuildWriter,
    plan: _Plan,
    new: Tables,
    encoder: Encoder,
    progress: Progress | None,
    vectors: NewVectors,
    served: ServedBuild | None = None,
) -> tuple[Tables, _Segments]:
    """Link the carried segments, write the new one (BM25, windows, texts) and assemble the vector stores."""
    previous, kept = plan.previous, plan.kept
    tables, sentence_members, passage_members = segments.assign(
        kept.extend(new), plan.carried, len(kept.sentences), len(kept.passages)
    )
    entries = []
    if previous is not None:
        for number in plan.carried:
            entry = previous.manifest.segments[number]
            writer.link(previous.path, previous.manifest, segments.segment_files(entry.name))
            entries.append(entry)
    kept_members = sentence_members[sentence_members < len(kept.sentences)]
    # A source's text goes with its records: in a carried segment already, or in the new one.
    in_carried = set(np.unique(tables.passages["source"][tables.passages["segment"] < len(entries)]).tolist())
    member_sources = [source for number, source in enumerate(tables.sources) if number not in in_carried]

    def embed(windows: WindowWriter | None) -> dict[str, VectorStore]:
        served_by = (served, tables, entries) if served else None
        return _embed(previous, kept, kept_members, new, encoder, progress, windows, vectors, served_by)

    if entries and not len(sentence_members) and not len(passage_members) and not member_sources:
        # Only removals: the carried segments hold everything, and no empty segment is written.
        stores = embed(None)
        return tables, _Segments(stores, entries)
    name = f"segment-{writer.token}"
    folder = writer.path(f"{segments.SEGMENTS}/{name}/{segments.TEXTS}").parent
    layout.write_jsonl(folder / segments.TEXTS, ({"source": s, "text": tables.texts[s]} for s in member_sources))
    # BM25 is built before any vector is embedded, so that its working memory and the vectors' are never held at once.
    logger.info("BM25 over %d sentences and %d paragraphs", len(sentence_members), len(passage_members))
    for kind, texts in (
        ("sentences", tables.sentence_texts(sentence_members)),
        ("passages", tables.passage_texts(passage_members)),
    ):
        (folder / f"{kind}.bm25").mkdir()
        Bm25Part(texts).save(folder / f"{kind}.bm25")
    windows = int(tables.sentences["windows"][sentence_members].sum())
    entries.append(SegmentEntry(name, len(sentence_members), len(passage_members), windows))
    writer_of_windows = WindowWriter(folder / segments.WINDOWS, windows, encoder.fingerprint.dimension)
    stores = embed(writer_of_windows)
    return tables, _Segments(stores, entries)


def _embed(
    previous: Index | None,
    kept: Tables,
    kept_members: np.ndarray,
    new: Tables,
    encoder: Encoder,
    progress: Progress | None,
    windows: WindowWriter | None,
    vectors: NewVectors,
    served: tuple[ServedBuild, Tables, list[SegmentEntry]] | None = None,
) -> dict[str, VectorStore]:
    """Embed the new records' sentences (with their word windows) and passages; join the kept ones' vectors.

    `vectors` embeds them here (EmbedHere) or hands over those made elsewhere.

    The new segment's window vectors go to `windows` as they are made: first
    those of kept records that move into it, then the new sentences'. Only the
    sentence and passage vectors are held, to be added to the stores: FAISS
    stores, or, when `served` (with the build's tables and segments), new Qdrant collections.
    """
    if windows is None:
        sentence_vectors = np.zeros((0, encoder.fingerprint.dimension), dtype=np.float32)
    else:
        try:
            if previous is not None and len(kept_members):
                previous_rows = np.flatnonzero(previous.source_mask(only=frozenset(kept.sources)))[kept_members]
                for first in range(0, len(previous_rows), EMBED_CHUNK):
                    windows.write(previous.windows.of_sentences(previous_rows[first : first + EMBED_CHUNK]))
            sentence_vectors = vectors.sentences(new, encoder, progress, windows)
        except BaseException:
            windows.abandon()
            raise
        windows.close()
    new_vectors = {"sentences": sentence_vectors, "passages": vectors.passages(new, encoder, progress)}
    stores: dict[str, VectorStore] = {}
    if served is not None:
        qdrant, tables, entries = served
        for name in STORES:
            kept_store = previous.stores[name] if previous is not None else None
            stores[name] = qdrant.write(name, tables, entries, kept_store, new_vectors[name])
        return stores
    for name in STORES:
        kept_keys = record_key(getattr(kept, name)["id"])
        removed = None
        if previous is not None:
            # The kept records are the previous build's rows of the kept sources, in order.
            only = frozenset(kept.sources)
            mask = previous.source_mask(only=only) if name == "sentences" else previous.passage_mask(only=only)
            keys = previous.sentence_keys if name == "sentences" else previous.passage_keys
            removed = keys[~mask]
        previous_store = previous.stores[name] if previous is not None else None
        stores[name] = FaissStore.assemble(
            encoder.fingerprint.dimension,
            record_key(getattr(new, name)["id"]),
            new_vectors[name],
            previous=cast(FaissStore, previous_store),
            kept=kept_keys,
            removed=removed,
        )
    return stores


def _manifest(
    encoder: Encoder,
    readable: list[SourceFile],
    tables: Tables,
    skipped: list[SkippedFile],
    max_file_mb: float,
    stores: dict[str, VectorStore],
    segment_entries: list[SegmentEntry],
    reused: dict[str, SourceEntry],
) -> Manifest:
    """The new build's manifest, before its files' checksums are known.

    It records the size limit so that Index.stale judges the seeds by the same one.
    A source reused unextracted keeps its entry in the live build's manifest
    (`reused`), as its records are kept.
    """
    numbers = {
        "passages": np.bincount(tables.passages["source"], minlength=len(tables.sources)),
        "sentences": np.bincount(tables.sentence_source, minlength=len(tables.sources)),
    }
    counted = {kind: dict(zip(tables.sources, counts.tolist(), strict=True)) for kind, counts in numbers.items()}
    sources = {
        f.source: SourceEntry(
            f.sha256,
            f.format,
            f.title,
            len(f.pages) or None,
            counted["passages"].get(f.source, 0),
            counted["sentences"].get(f.source, 0),
        )
        if not f.reused
        else reused[f.source]
        for f in sorted(readable, key=lambda f: f.source)
    }
    return Manifest(
        schema_version=SCHEMA_VERSION,
        model=encoder.fingerprint,
        built_at=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        counts=Counts(len(sources), len(tables.passages), len(tables.sentences)),
        sources=sources,
        skipped={f.source: SkippedEntry(f.sha256, f.reason, f.duplicate_of) for f in skipped},
        max_file_mb=max_file_mb,
        stores={name: StoreEntry(store.kind.split(" ")[0], store.trained_on) for name, store in stores.items()},
        segments=segment_entries,
    )
