"""Shards: what a cluster made of one document, kept on the driver's disk until a build commits it.

A shard is a folder named by its key: the sha256 of the document's path and
bytes, the model's weights and SCHEMA_VERSION, so it holds exactly what a
local build would make of that file today. In it, `document.json` (the
metadata and text), `passages.npy` and `sentences.npy` (the document's
records, qa/storage/tables.py columns) and, unless the file was skipped,
`sentence_vectors.npy`, `windows.npy` and `passage_vectors.npy`.

Each shard is written, under a temporary name and renamed, as soon as its
row comes back from the cluster, so a build that fails part-way (a lost
node, a killed driver) leaves the finished documents to the next build,
which sends only the rest. A build that commits removes the shards it used.
They live under QA_CACHE (default ~/.cache/qa), in `shards/`.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path
from typing import Any

import numpy as np

from qa.cluster import MadeElsewhere
from qa.cluster.work import VECTOR_COLUMNS, Row, row_tables
from qa.embed.documents import Progress, WindowSink
from qa.embed.encoder import Encoder, ModelFingerprint
from qa.ingest.extract import PageSpan
from qa.ingest.seeds import SourceFile
from qa.records import Document, SkippedFile
from qa.storage.manifest import SCHEMA_VERSION
from qa.storage.tables import Tables

DOCUMENT = "document.json"
ARRAYS = ("passages", "sentences", *VECTOR_COLUMNS)


def shard_key(source: str, sha256: str, fingerprint: ModelFingerprint) -> str:
    """The key of what a build makes of `source` with these bytes and this model."""
    parts = ("qa shard", str(SCHEMA_VERSION), fingerprint.weights_sha256, source, sha256)
    return hashlib.sha256("\0".join(parts).encode("utf-8")).hexdigest()


class Shards:
    """The shards folder: written row by row as a cluster returns them, read back in plan order."""

    def __init__(self, folder: Path, fingerprint: ModelFingerprint) -> None:
        self.folder = folder
        self.fingerprint = fingerprint

    def path(self, source_file: SourceFile) -> Path:
        return self.folder / shard_key(source_file.source, source_file.sha256, self.fingerprint)

    def missing(self, files: list[SourceFile]) -> list[SourceFile]:
        """The files that have no finished shard yet."""
        return [source_file for source_file in files if not (self.path(source_file) / DOCUMENT).is_file()]

    def write(self, source_file: SourceFile, row: Row) -> None:
        """Keep a document's row: written whole under a temporary name, then renamed into place."""
        final = self.path(source_file)
        temporary = final.with_name(f".{final.name}.{os.getpid()}.tmp")
        shutil.rmtree(temporary, ignore_errors=True)
        temporary.mkdir(parents=True)
        for name in ARRAYS:
            if row.get(name):
                (temporary / f"{name}.npy").write_bytes(row[name])
        # document.json last: its presence is what marks a shard finished.
        document = {"source": row["source"], "meta": json.loads(row["meta"]), "text": row["text"]}
        (temporary / DOCUMENT).write_text(json.dumps(document, ensure_ascii=False), encoding="utf-8")
        try:
            temporary.rename(final)
        except OSError:  # another build finished the same shard first: its copy is as good
            shutil.rmtree(temporary, ignore_errors=True)

    def read(self, source_file: SourceFile) -> SourceFile | SkippedFile:
        """What the cluster read of the file: its text and metadata, or why it was skipped."""
        document = json.loads((self.path(source_file) / DOCUMENT).read_text(encoding="utf-8"))
        meta = document["meta"]
        if meta["skipped"] is not None:
            return SkippedFile(source_file.source, meta["skipped"], source_file.sha256)
        pages = tuple(PageSpan(page, start, end) for page, start, end in meta["pages"])
        return SourceFile(
            source_file.source, source_file.sha256, document["text"], meta["format"], meta["title"], None, pages
        )

    def tables(self, source_file: SourceFile) -> Tables:
        """The records of a document the cluster read."""
        folder = self.path(source_file)
        document = json.loads((folder / DOCUMENT).read_text(encoding="utf-8"))
        row: Row = {"source": document["source"], "meta": json.dumps(document["meta"]), "text": document["text"]}
        for name in ("passages", "sentences"):
            row[name] = (folder / f"{name}.npy").read_bytes()
        return row_tables(row)

    def meta(self, source_file: SourceFile) -> dict[str, Any]:
        return json.loads((self.path(source_file) / DOCUMENT).read_text(encoding="utf-8"))["meta"]

    def remove(self, files: list[SourceFile]) -> None:
        """Forget these files' shards (their build committed them)."""
        for source_file in files:
            shutil.rmtree(self.path(source_file), ignore_errors=True)


def document_of(tables: Tables, source_file: SourceFile) -> Document:
    """The Document a shard's records stand for, as split_document made it on the cluster."""
    passages = tuple(tables.passage(row) for row in range(len(tables.passages)))
    sentences = tuple(tables.sentence(row) for row in range(len(tables.sentences)))
    text = tables.texts[source_file.source]
    return Document(
        source_file.source, source_file.sha256, text, passages, sentences, source_file.format, source_file.title
    )


class ShardVectors:
    """The new records' vectors as their shards hold them (NewVectors): window vectors are read as they are written."""

    def __init__(self, shards: Shards, files: list[SourceFile], dimension: int) -> None:
        self.shards, self.files = shards, files
        empty = np.zeros((0, dimension), dtype=np.float32)
        self._sentences = np.concatenate([empty, *(self._array(f, "sentence_vectors") for f in files)])
        self._passages = np.concatenate([empty, *(self._array(f, "passage_vectors") for f in files)])

    def _array(self, source_file: SourceFile, name: str) -> np.ndarray:
        return np.load(self.shards.path(source_file) / f"{name}.npy", allow_pickle=False)

    def sentences(self, new: Tables, encoder: Encoder, progress: Progress | None, windows: WindowSink) -> np.ndarray:
        _check(len(new.sentences), self._sentences, encoder, "sentence")
        for source_file in self.files:
            windows.write(self._array(source_file, "windows"))
        return self._sentences

    def passages(self, new: Tables, encoder: Encoder, progress: Progress | None) -> np.ndarray:
        _check(len(new.passages), self._passages, encoder, "paragraph")
        return self._passages


def _check(records: int, vectors: np.ndarray, encoder: Encoder, kind: str) -> None:
    if vectors.shape != (records, encoder.fingerprint.dimension):
        raise ValueError(f"the cluster made {vectors.shape} {kind} vectors for {records} {kind}s")


def made_elsewhere(
    shards: Shards, new_files: list[SourceFile], readable: list[SourceFile], skipped: list[SkippedFile], dimension: int
) -> MadeElsewhere:
    """The build's files and the new ones' records and vectors, from their shards (every new file has one).

    The lists come out as a local build's reading makes them: readable and
    skipped files each in path order.
    """
    done = [shards.read(source_file) for source_file in new_files]
    new_readable = [f for f in done if isinstance(f, SourceFile)]
    sent = {f.source for f in new_files}
    all_readable = sorted([*(f for f in readable if f.source not in sent), *new_readable], key=lambda f: f.source)
    all_skipped = sorted([*skipped, *(f for f in done if isinstance(f, SkippedFile))], key=lambda f: f.source)
    # One document at a time, as a local build splits them: a document's records live only while it is added.
    tables = Tables.from_documents(document_of(shards.tables(f), f) for f in new_readable)
    return MadeElsewhere(all_readable, all_skipped, new_readable, tables, ShardVectors(shards, new_readable, dimension))
