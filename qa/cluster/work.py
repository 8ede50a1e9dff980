"""The work a cluster does on one seed file, as plain functions on rows: read and split it, then embed it.

Rows are what Ray Data passes between stages (qa/cluster/ray_build.py):
dicts of strings and bytes only, so nothing is pickled. Arrays travel as .npy
bytes (np.save, allow_pickle=False), the same bytes the driver then writes as
a document's shard (qa/cluster/shards.py). Nothing here imports Ray, so the
same code runs in-process in the tests.

A row goes through three shapes:

- a file: source, suffix, sha256, data (its bytes);
- split (`split_file`): source, meta (JSON: sha256, format, title, pages,
  sections, and `skipped`, the reason it was not read, or null), text, and
  its records as one document's Tables columns (`passages`, `sentences`);
- embedded (`EmbedDocuments`): the same with `sentence_vectors`, `windows`
  and `passage_vectors`, in the document's record order.
"""

from __future__ import annotations

import io
import json
import logging
import os
import time
from typing import Any

import numpy as np

from qa.embed.documents import embed_passages, embed_sentences
from qa.embed.encoder import Encoder
from qa.errors import ModelMismatchError
from qa.ingest.seeds import extract_source
from qa.records import SkippedFile
from qa.split import split_document
from qa.storage.tables import Tables

logger = logging.getLogger(__name__)

Row = dict[str, Any]
VECTOR_COLUMNS = ("sentence_vectors", "windows", "passage_vectors")


def npy_bytes(array: np.ndarray) -> bytes:
    """An array as the bytes of a .npy file."""
    buffer = io.BytesIO()
    np.save(buffer, array, allow_pickle=False)
    return buffer.getvalue()


def npy_array(data: bytes) -> np.ndarray:
    """The array of .npy bytes."""
    return np.load(io.BytesIO(data), allow_pickle=False)


def split_file(row: Row) -> Row:
    """Extract a file's text from its bytes and split it into records, as a local build does (or say why not)."""
    started = time.perf_counter()
    read = extract_source(row["source"], row["sha256"], row["suffix"], row["data"])
    if isinstance(read, SkippedFile):
        reason = {"sha256": read.sha256, "skipped": read.reason}
        return {"source": read.source, "meta": json.dumps(reason), "text": "", "passages": b"", "sentences": b""}
    document = split_document(read)
    tables = Tables.from_documents([document])
    meta: dict[str, Any] = {
        "sha256": read.sha256,
        "format": read.format,
        "title": read.title,
        "pages": [[span.page, span.start, span.end] for span in read.pages],
        "sections": tables.sections,
        "skipped": None,
        "split_s": time.perf_counter() - started,
    }
    return {
        "source": read.source,
        "meta": json.dumps(meta),
        "text": document.text,
        "passages": npy_bytes(tables.passages),
        "sentences": npy_bytes(tables.sentences),
    }


def row_tables(row: Row) -> Tables:
    """One split document's records, from its row or shard."""
    meta = json.loads(row["meta"])
    source = str(row["source"])
    return Tables(
        npy_array(row["passages"]), npy_array(row["sentences"]), [source], list(meta["sections"]), {source: row["text"]}
    )


class _Collected:
    """Window vectors kept in memory, for one batch of documents."""

    def __init__(self) -> None:
        self.parts: list[np.ndarray] = []

    def write(self, vectors: np.ndarray) -> None:
        self.parts.append(np.asarray(vectors, dtype=np.float16))


class EmbedDocuments:
    """Embeds batches of split documents with one model, loaded once, on one torch thread.

    One thread: a cluster runs one of these per CPU it offers, so that the
    actors, not torch's threads, share the cores.

    Raises:
        ModelMismatchError: this machine's model is not the driver's (its weights differ).
    """

    def __init__(self, model: str | None, batch_size: int, weights_sha256: str) -> None:
        started = time.perf_counter()
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        import torch

        torch.set_num_threads(1)
        self.encoder = Encoder(model, batch_size, "torch")
        found = self.encoder.fingerprint.weights_sha256
        if found != weights_sha256:
            raise ModelMismatchError(
                f"the model at {self.encoder.path} on this node has weights {found[:12]}, the build's has "
                f"{weights_sha256[:12]}: install the same model on every node"
            )
        _ = self.encoder.model  # loaded now, once for every batch this actor embeds
        self.load_s = time.perf_counter() - started
        self.ready_at = time.time()
        self.first = True

    def __call__(self, batch: dict[str, Any]) -> dict[str, list[Any]]:
        """The batch's rows with their vectors; skipped files pass through with none."""
        started = time.perf_counter()
        rows: list[Row] = [dict(zip(batch, values, strict=True)) for values in zip(*batch.values(), strict=True)]
        readable = [row for row in rows if json.loads(row["meta"])["skipped"] is None]
        tables = Tables.empty()
        for row in readable:
            tables = tables.extend(row_tables(row))
        windows = _Collected()
        sentence_vectors = embed_sentences(tables, self.encoder, None, windows)
        passage_vectors = embed_passages(tables, self.encoder, None)
        dimension = self.encoder.fingerprint.dimension
        window_vectors = np.concatenate([np.zeros((0, dimension), dtype=np.float16), *windows.parts])
        sentence_at = passage_at = window_at = 0
        spent = time.perf_counter() - started
        for row in rows:
            meta = json.loads(row["meta"])
            if meta["skipped"] is not None:
                row.update(dict.fromkeys(VECTOR_COLUMNS, b""))
                continue
            sentences, passages = npy_array(row["sentences"]), npy_array(row["passages"])
            window_count = int(sentences["windows"].sum())
            row["sentence_vectors"] = npy_bytes(sentence_vectors[sentence_at : sentence_at + len(sentences)])
            row["windows"] = npy_bytes(window_vectors[window_at : window_at + window_count])
            row["passage_vectors"] = npy_bytes(passage_vectors[passage_at : passage_at + len(passages)])
            sentence_at, passage_at, window_at = (
                sentence_at + len(sentences),
                passage_at + len(passages),
                window_at + window_count,
            )
            # Each document carries its share of the batch's embedding time, and the
            # first one an actor embeds says when it was ready and how long loading took.
            meta["embed_s"] = spent * len(sentences) / max(len(tables.sentences), 1)
            meta["worker"] = self.worker()
            if self.first:
                meta.update(load_s=self.load_s, ready_at=self.ready_at)
                self.first = False
            row["meta"] = json.dumps(meta)
        return {column: [row[column] for row in rows] for column in rows[0]} if rows else {}

    def worker(self) -> str:
        """Which machine and process embedded a document (a cluster names its node instead)."""
        return f"{os.uname().nodename}:{os.getpid()}"
