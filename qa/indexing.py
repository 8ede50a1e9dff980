"""Build the index: incremental (only new and changed sources are embedded), atomic, locked.

A build writes a new folder beside the live one and then replaces CURRENT in one
rename, so a reader sees either the old build or the new one, never a mix, and a
failed or killed build leaves the old one live (qa/storage/layout.py writes the files).
A failed build removes what it wrote; a killed one leaves it to the next build.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from qa.config import DEFAULT_MAX_FILE_MB
from qa.embed.encoder import Encoder
from qa.errors import IndexMissingError, IndexWriteError, QAError, SeedsError
from qa.ingest.seeds import FORMATS_HINT, SourceFile, read_sources
from qa.reader.index import Index, load_index
from qa.records import BuildReport, SkippedFile
from qa.split import split_document, word_windows
from qa.storage import layout
from qa.storage.layout import STORES, read_manifest
from qa.storage.lexical import LexicalIndex
from qa.storage.manifest import SCHEMA_VERSION, Counts, Manifest, SkippedEntry, SourceEntry, StoreEntry
from qa.storage.tables import Tables, record_key
from qa.storage.vectors import FaissStore, WindowVectors

logger = logging.getLogger(__name__)

Progress = Callable[[int, int], None]
# Sentences of more words than this get their word windows embedded as texts
# of their own; shorter ones pool them from their own token vectors. The
# longest 10% of SQuAD's sentences, whose windows cost a build about 15%
# more time: `python -m qa.measure.ablate_build` measures the choice.
LONG_SENTENCE_WORDS = 40
# Texts embedded per call after the sentences (paragraphs, long sentences' windows).
_EMBED_CHUNK = 32_768


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
    unchanged, new_files = set(), []
    for source_file in readable:
        old = old_sources.get(source_file.source)
        same = old is not None and old.sha256 == source_file.sha256
        (report.unchanged if same else report.changed if old else report.added).append(source_file.source)
        if same and previous is not None:
            unchanged.add(source_file.source)
        else:
            new_files.append(source_file)
    report.removed = sorted(set(old_sources) - {f.source for f in readable})

    # Reused records point into the text they were split from, kept from the
    # previous build even if today's extractor would lay the file out differently.
    kept = previous.tables.keep_sources(unchanged) if previous is not None else Tables.empty()
    # Split one document at a time into columns: a document's records live only while it is added.
    new = Tables.from_documents(split_document(source_file) for source_file in new_files)
    tables = kept.extend(new)
    # Rebuilt over every text: BM25's IDF and lengths are corpus-wide. Built
    # before any vector is embedded, so that its working memory and the
    # vectors' are never held at once.
    logger.info("BM25 over %d sentences and %d paragraphs", len(tables.sentences), len(tables.passages))
    lexical = {"sentences": LexicalIndex(tables.sentence_texts()), "passages": LexicalIndex(tables.passage_texts())}
    stores, windows = _assemble_stores(previous, kept, new, encoder, progress)
    report.embedded_sentences = len(new.sentences)
    report.embedded_passages = len(new.passages)

    manifest = _manifest(encoder, readable, tables, skipped, max_file_mb, stores)
    build, manifest = layout.write_build(index_dir, manifest, tables, stores, windows, lexical)
    layout.remove_leftovers(index_dir, build.name, keep=live)
    # Served from the file from now on, as a loaded index would be: the array goes.
    windows = WindowVectors.load(build / layout.WINDOWS, windows.counts)
    index = Index(build, manifest, encoder, tables, stores, windows, lexical)
    index.report = report
    return index


def _assemble_stores(
    previous: Index | None, kept: Tables, new: Tables, encoder: Encoder, progress: Progress | None
) -> tuple[dict[str, FaissStore], WindowVectors]:
    """Embed the new records' sentences (with their word windows, pooled) and passages; join the kept ones' vectors."""
    sentence_texts = list(new.sentence_texts())
    passage_texts = list(new.passage_texts())
    spans = [word_windows(text, 0, len(text)) for text in sentence_texts]
    # A long sentence's token vectors carry so much of the rest of it that a
    # clause pooled from them no longer stands out: those windows are embedded
    # as texts of their own, after the paragraphs.
    first_window = np.cumsum([0, *(len(row) for row in spans)])
    long_rows = [row for row, text in enumerate(sentence_texts) if len(text.split()) > LONG_SENTENCE_WORDS]
    window_rows = np.asarray(
        [first_window[row] + number for row in long_rows for number in range(len(spans[row]))], dtype=np.int64
    )
    window_texts = [sentence_texts[row][a:b] for row in long_rows for a, b in spans[row]]
    later = passage_texts + window_texts
    total = len(sentence_texts) + len(later)

    def first_part(count: int, pieces: int) -> None:
        if progress is not None:
            progress(round(count * len(sentence_texts) / max(pieces, 1)), total)

    sentence_vectors, window_vectors = encoder.encode_with_spans(sentence_texts, spans, first_part)
    passage_vectors = np.empty((len(passage_texts), encoder.fingerprint.dimension), dtype=np.float32)
    # In chunks, so that a million sentences' window texts never sit in memory as float32 at once.
    for first in range(0, len(later), _EMBED_CHUNK):
        part = later[first : first + _EMBED_CHUNK]

        def later_part(count: int, pieces: int, first: int = first, size: int = len(part)) -> None:
            if progress is not None:
                progress(len(sentence_texts) + first + round(count * size / max(pieces, 1)), total)

        vectors = encoder.encode(part, later_part)
        positions = np.arange(first, first + len(part))
        is_passage = positions < len(passage_texts)
        passage_vectors[positions[is_passage]] = vectors[is_passage]
        window_vectors[window_rows[positions[~is_passage] - len(passage_texts)]] = vectors[~is_passage]
    new_vectors = {"sentences": sentence_vectors, "passages": passage_vectors}
    stores = {}
    for name in STORES:
        kept_keys = record_key(getattr(kept, name)["id"])
        removed = None
        if previous is not None:
            removed = np.setdiff1d(record_key(getattr(previous.tables, name)["id"]), kept_keys)
        stores[name] = FaissStore.assemble(
            encoder.fingerprint.dimension,
            record_key(getattr(new, name)["id"]),
            new_vectors[name],
            previous=previous.stores[name] if previous is not None else None,
            kept=kept_keys,
            removed=removed,
        )
    counts = np.concatenate([kept.sentences["windows"], new.sentences["windows"]])
    kept_count = int(kept.sentences["windows"].sum())
    if previous is None or not kept_count:
        return stores, WindowVectors(window_vectors, counts)
    windows = np.empty((kept_count + len(window_vectors), encoder.fingerprint.dimension), dtype=np.float16)
    kept_rows = np.flatnonzero(previous.source_mask(only=frozenset(kept.sources)))
    windows[:kept_count] = previous.windows.of_sentences(kept_rows)
    windows[kept_count:] = window_vectors
    return stores, WindowVectors(windows, counts)


def _manifest(
    encoder: Encoder,
    readable: list[SourceFile],
    tables: Tables,
    skipped: list[SkippedFile],
    max_file_mb: float,
    stores: dict[str, FaissStore],
) -> Manifest:
    """The new build's manifest, before its files' checksums are known.

    It records the size limit so that Index.stale judges the seeds by the same one.
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
    )
