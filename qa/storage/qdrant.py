"""Vectors served by Qdrant instead of FAISS (QA_STORE=qdrant): dense vectors and BM25 as sparse vectors.

Each store (sentences, passages) is one Qdrant collection per build, named
`<prefix>-<kind>-<build token>`. A point's id is the record's vector key
(qa/storage/vectors.py) and its payload holds the record's hex id, source and
offsets. Besides the dense vector it holds the record's BM25 terms as a sparse
vector: each term's length-normalised frequency as bm25s weighs it in the
record's segment, with Qdrant applying the IDF over the whole collection
(`Modifier.IDF`, Lucene's formula, as bm25s uses), so a sparse query scores
what the local BM25 scores. Terms are numbered by a 32-bit hash, as Qdrant's own
BM25 (fastembed) numbers them.

A build fills a new collection, and only after the build is live does the
alias `<prefix>-<kind>` move to it, in one atomic alias operation; a build that
fails deletes the collection it began, so the last good one stays in use. The
build folder keeps a small JSON file naming the collection, checksummed like
every data file, so a loaded build always reads the collection it was built
with, never a newer one. Fusion, any reranker and the slice check stay in qa.

Nothing here contacts the server until the first question (or a build): a
server down at start gives a clear error for each question until it is back,
never a failed start. Every request has a bounded timeout.
"""

from __future__ import annotations

import atexit
import hashlib
import json
import logging
import os
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from qdrant_client import QdrantClient, models
from qdrant_client.http.exceptions import ResponseHandlingException, UnexpectedResponse

from qa.config import StoreSettings
from qa.errors import IndexWriteError, StoreUnavailableError
from qa.storage.lexical import LexicalIndex
from qa.storage.tables import Tables
from qa.storage.vectors import Scope

logger = logging.getLogger(__name__)

DENSE = "dense"
SPARSE = "bm25"
# Points written or read per request.
BATCH = 256


def term_number(token: str) -> int:
    """The sparse-vector index of a BM25 token: the first 32 bits of its blake2b hash."""
    return int.from_bytes(hashlib.blake2b(token.encode("utf-8"), digest_size=4).digest(), "little")


def sparse_query(weights: dict[str, float]) -> models.SparseVector:
    """A sparse query of weighted tokens (a hash shared by two tokens adds their weights)."""
    merged: dict[int, float] = {}
    for token, weight in weights.items():
        number = term_number(token)
        merged[number] = merged.get(number, 0.0) + weight
    return models.SparseVector(indices=list(merged), values=list(merged.values()))


@dataclass(frozen=True)
class SourceFilter:
    """Which sources a restricted question may be answered from: all but `exclude`, and only `only` when given."""

    exclude: str | None = None
    only: frozenset[str] | None = None

    def to_qdrant(self) -> models.Filter:
        must: list[Any] = []
        must_not: list[Any] = []
        if self.only is not None:
            must.append(models.FieldCondition(key="source", match=models.MatchAny(any=sorted(self.only))))
        if self.exclude is not None:
            must_not.append(models.FieldCondition(key="source", match=models.MatchValue(value=self.exclude)))
        return models.Filter(must=must or None, must_not=must_not or None)


_FAILURES = (ResponseHandlingException, UnexpectedResponse, ConnectionError, TimeoutError, OSError, RuntimeError)


def connect(settings: StoreSettings) -> QdrantClient:
    """A client for the configured server (QA_QDRANT_URL) or local folder (QA_QDRANT_PATH); contacts nothing yet."""
    if settings.url:
        # The client counts its timeout in whole seconds.
        return QdrantClient(
            url=settings.url,
            api_key=settings.api_key,
            timeout=max(1, round(settings.timeout)),
            # Its version check would ask the server at load; a question asks it soon enough.
            check_compatibility=False,
        )
    return _local_client(str(Path(settings.path or "").resolve()))


# Qdrant's local mode locks its folder for one client; one per folder per process.
_LOCAL: dict[str, QdrantClient] = {}


def _local_client(path: str) -> QdrantClient:
    if path not in _LOCAL:
        _LOCAL[path] = QdrantClient(path=path)
    return _LOCAL[path]


@atexit.register
def _close_local() -> None:
    # Closed before the interpreter tears down the modules the client's own finaliser needs.
    for client in _LOCAL.values():
        client.close()


def where(settings: StoreSettings) -> str:
    """The server or folder a message names."""
    return settings.url or f"local folder {settings.path}"


class QdrantStore:
    """One record kind's vectors in one Qdrant collection, behind the interface FaissStore has."""

    kind = "qdrant"
    trained_on = 0

    def __init__(self, client: QdrantClient, collection: str, dimension: int, size: int, settings: StoreSettings):
        self.client = client
        self.collection = collection
        self.dimension = dimension
        self._size = size
        self.settings = settings

    def __len__(self) -> int:
        # The count the build wrote: loading never waits on the server.
        return self._size

    def _call(self, doing: str, request: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            return request(*args, **kwargs)
        except _FAILURES as error:
            raise StoreUnavailableError(
                f"the Qdrant store at {where(self.settings)} did not answer while {doing} "
                f"(collection {self.collection}: {error}); check that the server is up and QA_QDRANT_URL is right"
            ) from error

    def search_within(self, query: np.ndarray, k: int, scope: Scope) -> tuple[np.ndarray, np.ndarray]:
        """The k best (cosines, keys) from the scope's sources, filtered by Qdrant on the points' payload."""
        return self.search(query, k, sources=SourceFilter(scope.exclude_source, scope.only))

    def search(
        self, query: np.ndarray, k: int, exclude: np.ndarray | None = None, sources: SourceFilter | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """The k best (cosines, keys) for one query vector, best first, only from `sources` when given."""
        if exclude is not None and len(exclude):
            raise ValueError("a Qdrant store restricts by source (sources=), not by a list of keys")
        k = min(k, len(self))
        if k <= 0:
            return np.zeros(0, dtype=np.float32), np.zeros(0, dtype=np.int64)
        found = self._call(
            "searching its vectors",
            self.client.query_points,
            self.collection,
            query=np.asarray(query, dtype=np.float32).tolist(),
            using=DENSE,
            limit=k,
            query_filter=sources.to_qdrant() if sources else None,
            with_payload=False,
        ).points
        return _scored(found)

    def lexical(
        self, weights: dict[str, float], k: int, sources: SourceFilter | None = None, keys: np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """The k best (BM25 scores, keys) for weighted query tokens; only among `keys` when given."""
        if not weights or k <= 0:
            return np.zeros(0, dtype=np.float32), np.zeros(0, dtype=np.int64)
        conditions = sources.to_qdrant() if sources else models.Filter()
        if keys is not None:
            chosen = models.HasIdCondition(has_id=[int(key) for key in keys])
            conditions = models.Filter(must=[*(conditions.must or []), chosen], must_not=conditions.must_not)
        found = self._call(
            "scoring BM25",
            self.client.query_points,
            self.collection,
            query=sparse_query(weights),
            using=SPARSE,
            limit=k,
            query_filter=conditions,
            with_payload=False,
        ).points
        return _scored(found)

    def vectors(self, keys: np.ndarray) -> np.ndarray:
        """The stored vectors for these keys, in order."""
        keys = np.asarray(keys, dtype=np.int64)
        out = np.zeros((len(keys), self.dimension), dtype=np.float32)
        if not len(keys):
            return out
        where_key = {int(key): row for row, key in enumerate(keys.tolist())}
        for first in range(0, len(keys), BATCH):
            records = self._call(
                "reading vectors",
                self.client.retrieve,
                self.collection,
                ids=[int(key) for key in keys[first : first + BATCH]],
                with_vectors=[DENSE],
                with_payload=False,
            )
            for record in records:
                out[where_key[int(record.id)]] = record.vector[DENSE]
        return out

    def add(self, keys: np.ndarray, vectors: np.ndarray) -> None:
        raise NotImplementedError("a Qdrant store is written by QdrantWriter, a whole collection per build")

    def remove(self, keys: np.ndarray) -> int:
        raise NotImplementedError("a Qdrant store is written by QdrantWriter, a whole collection per build")

    def save(self, path: Path) -> str:
        """Write the file naming this store's collection; returns its sha256."""
        data = (
            json.dumps({"collection": self.collection, "points": self._size, "dimension": self.dimension}) + "\n"
        ).encode()
        path.write_bytes(data)
        return hashlib.sha256(data).hexdigest()

    @classmethod
    def load(cls, path: Path, settings: StoreSettings) -> QdrantStore:
        """The store that file names, on the configured server; nothing is asked of the server yet."""
        named = json.loads(path.read_text(encoding="utf-8"))
        return cls(connect(settings), str(named["collection"]), int(named["dimension"]), int(named["points"]), settings)


def _scored(points: list[models.ScoredPoint]) -> tuple[np.ndarray, np.ndarray]:
    scores = np.asarray([point.score for point in points], dtype=np.float32)
    keys = np.asarray([int(point.id) for point in points], dtype=np.int64)
    return scores, keys


@dataclass
class Points:
    """One record kind's points for a new collection, in row order: keys, payloads, dense vectors, sparse terms."""

    keys: np.ndarray
    payload: Callable[[int], dict[str, Any]]  # a row's payload
    vectors: Iterable[np.ndarray]  # chunks of dense vectors, in row order
    terms: Iterator[tuple[list[int], list[float]]]  # each row's sparse (indices, values)


class QdrantWriter:
    """Writes a build's collections, moves the aliases once the build is live, and removes collections no build uses."""

    def __init__(self, settings: StoreSettings, token: str, ledger: Path) -> None:
        """Collections of build `token`; `ledger` lists every collection builds of this index folder began.

        Only collections in the ledger are ever deleted, so two index folders
        sharing a server and a prefix never remove each other's, and a killed
        build's half-written collection is found by the next build.
        """
        self.settings = settings
        self.client = connect(settings)
        self.token = token
        self.ledger = ledger
        self.created: list[str] = []

    def _ledger(self) -> list[str]:
        try:
            return [str(name) for name in json.loads(self.ledger.read_text(encoding="utf-8"))]
        except FileNotFoundError:
            return []
        except (OSError, ValueError) as error:
            logger.warning("cannot read %s (%s); old Qdrant collections may stay behind", self.ledger, error)
            return []

    def _record(self, names: list[str]) -> None:
        temporary = self.ledger.with_name(self.ledger.name + ".tmp")
        temporary.write_text(json.dumps(sorted(set(names))) + "\n", encoding="utf-8")
        os.replace(temporary, self.ledger)

    def collection(self, kind: str) -> str:
        return f"{self.settings.collection}-{kind}-{self.token}"

    def alias(self, kind: str) -> str:
        return f"{self.settings.collection}-{kind}"

    def write(self, kind: str, dimension: int, points: Points) -> QdrantStore:
        """A new collection holding these points.

        Raises:
            IndexWriteError: the server refused or did not answer; what was written is removed by abandon().
        """
        name = self.collection(kind)
        # Recorded before it exists: a build killed while writing it leaves a name the next build removes.
        self._record([*self._ledger(), name])
        try:
            self.client.create_collection(
                name,
                vectors_config={DENSE: models.VectorParams(size=dimension, distance=models.Distance.DOT)},
                sparse_vectors_config={SPARSE: models.SparseVectorParams(modifier=models.Modifier.IDF)},
            )
            self.created.append(name)
            if self.settings.url:  # a server filters by source through this index; local mode has none
                self.client.create_payload_index(name, "source", models.PayloadSchemaType.KEYWORD)
            rows = 0
            for chunk in points.vectors:
                batch = []
                for vector in chunk:
                    indices, values = next(points.terms)
                    vectors: dict[str, Any] = {DENSE: vector.tolist()}
                    vectors[SPARSE] = models.SparseVector(indices=indices, values=values)
                    batch.append(
                        models.PointStruct(id=int(points.keys[rows]), vector=vectors, payload=points.payload(rows))
                    )
                    rows += 1
                    if len(batch) == BATCH:
                        self.client.upsert(name, points=batch, wait=True)
                        batch = []
                if batch:
                    self.client.upsert(name, points=batch, wait=True)
        except _FAILURES as error:
            raise IndexWriteError(
                f"could not write Qdrant collection {name} at {where(self.settings)} ({error}); the previous index is unchanged"
            ) from error
        return QdrantStore(self.client, name, dimension, rows, self.settings)

    def abandon(self) -> None:
        """Delete the collections this build created (its failure leaves the last good ones in use)."""
        for name in self.created:
            try:
                self.client.delete_collection(name)
            except _FAILURES as error:
                logger.warning("could not delete the unfinished Qdrant collection %s (%s)", name, error)
                continue
            try:
                self._record([known for known in self._ledger() if known != name])
            except OSError as error:
                logger.warning("could not update %s (%s)", self.ledger, error)

    def publish(self, kinds: Iterable[str], keep: Iterable[str]) -> None:
        """Move each kind's alias to this build's collection in one operation; delete the ledger's others but `keep`.

        Called once the build is live; a failure here is logged, as the build
        serves from its own collections whatever the aliases say.
        """
        operations: list[Any] = []
        kinds = list(kinds)
        try:
            existing = {alias.alias_name for alias in self.client.get_aliases().aliases}
            for kind in kinds:
                if self.alias(kind) in existing:
                    operations.append(
                        models.DeleteAliasOperation(delete_alias=models.DeleteAlias(alias_name=self.alias(kind)))
                    )
                create = models.CreateAlias(collection_name=self.collection(kind), alias_name=self.alias(kind))
                operations.append(models.CreateAliasOperation(create_alias=create))
            self.client.update_collection_aliases(change_aliases_operations=operations)
            kept = set(keep)
            existing_collections = {described.name for described in self.client.get_collections().collections}
            for name in self._ledger():
                if name not in kept and name in existing_collections:
                    self.client.delete_collection(name)
            self._record(sorted(kept))
        except (*_FAILURES, OSError) as error:
            logger.warning("the build is live, but Qdrant's aliases or old collections were not updated (%s)", error)


def row_terms(lexical: LexicalIndex, rows: np.ndarray) -> Iterator[tuple[list[int], list[float]]]:
    """Each of these rows' BM25 terms as a sparse vector (hashed token numbers, weights without IDF)."""
    parts = []
    for part in lexical.parts:
        indptr, numbers, weights = part.text_terms()
        hashes = np.asarray([term_number(token) for token in part.tokens()], dtype=np.int64)
        parts.append((indptr, hashes[numbers] if len(numbers) else numbers, weights))
    for part_number, part_row in zip(lexical.part_of_row[rows].tolist(), lexical.part_row[rows].tolist(), strict=True):
        indptr, hashes, weights = parts[part_number]
        first, last = indptr[part_row], indptr[part_row + 1]
        merged: dict[int, float] = {}
        for number, weight in zip(hashes[first:last].tolist(), weights[first:last].tolist(), strict=True):
            merged[number] = merged.get(number, 0.0) + weight
        yield list(merged), list(merged.values())


def collections_of(build: Path) -> list[str]:
    """The Qdrant collections a build folder's store files name (none for a FAISS build)."""
    named = []
    for path in sorted(build.glob("*.qdrant.json")):
        try:
            named.append(str(json.loads(path.read_text(encoding="utf-8"))["collection"]))
        except (OSError, ValueError, KeyError) as error:
            logger.warning("cannot read %s (%s)", path, error)
    return named


def payloads(tables: Tables, kind: str) -> Callable[[int], dict[str, Any]]:
    """A row's payload: the record's hex id, source and offsets (and a sentence's passage id)."""
    table = tables.sentences if kind == "sentences" else tables.passages
    sources = tables.sentence_source if kind == "sentences" else tables.passages["source"]
    passage_ids = tables.passages["id"]

    def payload(row: int) -> dict[str, Any]:
        record = table[row]
        data: dict[str, Any] = {
            "id": f"{int(record['id']):016x}",
            "source": tables.sources[int(sources[row])],
            "start": int(record["start"]),
            "end": int(record["end"]),
        }
        if kind == "sentences":
            data["passage"] = f"{int(passage_ids[int(record['passage'])]):016x}"
        return data

    return payload
