"""The vector store behind a small interface, so another engine can stand in later.

Vectors are keyed by int64 ids derived from the records' hex ids, so removing a
source removes exactly its rows and nothing needs renumbering.
"""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

import faiss
import numpy as np


def vector_key(record_id: str) -> int:
    """The int64 key of a 16-hex-digit record id (its first 60 bits, always positive)."""
    return int(record_id[:15], 16)


class VectorStore(Protocol):
    """What the index needs from a vector engine."""

    dimension: int

    def __len__(self) -> int: ...

    def add(self, keys: np.ndarray, vectors: np.ndarray) -> None: ...

    def remove(self, keys: np.ndarray) -> int: ...

    def vectors(self, keys: np.ndarray) -> np.ndarray: ...

    def search(self, query: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]: ...

    def save(self, path: Path) -> None: ...


class FaissStore:
    """Exact inner-product search over unit vectors (cosine similarity) with FAISS."""

    def __init__(self, dimension: int, index: faiss.Index | None = None) -> None:
        self.dimension = dimension
        self._index = index if index is not None else faiss.IndexIDMap2(faiss.IndexFlatIP(dimension))

    def __len__(self) -> int:
        return int(self._index.ntotal)

    def add(self, keys: np.ndarray, vectors: np.ndarray) -> None:
        """Add unit vectors under the given int64 keys."""
        if len(keys):
            self._index.add_with_ids(np.ascontiguousarray(vectors, dtype=np.float32), np.asarray(keys, dtype=np.int64))

    def remove(self, keys: np.ndarray) -> int:
        """Remove the rows with these keys; returns how many were removed."""
        if not len(keys):
            return 0
        # faiss's generated stubs name only its IDSelector; its Python wrapper takes an id array too.
        return int(self._index.remove_ids(np.asarray(keys, dtype=np.int64)))  # type: ignore[arg-type]

    def vectors(self, keys: np.ndarray) -> np.ndarray:
        """The stored vectors for these keys, in order."""
        if not len(keys):
            return np.zeros((0, self.dimension), dtype=np.float32)
        return self._index.reconstruct_batch(np.asarray(keys, dtype=np.int64))

    def search(self, query: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """The k best (scores, keys) for one query vector, best first."""
        k = min(k, len(self))
        if k <= 0:
            return np.zeros(0, dtype=np.float32), np.zeros(0, dtype=np.int64)
        scores, keys = self._index.search(np.ascontiguousarray(query[None, :], dtype=np.float32), k)
        keep = keys[0] >= 0
        return scores[0][keep], keys[0][keep]

    def save(self, path: Path) -> None:
        """Write the store to `path` in FAISS's own format.

        Raises:
            OSError: the file cannot be written (read-only folder, full disk), with its errno.
        """
        # Through a Python file rather than faiss.write_index(index, path), whose
        # failures are RuntimeErrors carrying only a message; Python's carry the
        # errno (ENOSPC, EROFS) that a build turns into IndexWriteError.
        with path.open("wb") as handle:
            writer = faiss.PyCallbackIOWriter(handle.write)  # type: ignore[attr-defined]  # not in faiss's stubs
            faiss.write_index(self._index, writer)

    @classmethod
    def load(cls, path: Path) -> FaissStore:
        index = faiss.read_index(str(path))
        return cls(index.d, index)
