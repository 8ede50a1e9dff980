"""The vector store behind a small interface, so another engine can stand in later.

Vectors are keyed by int64 ids derived from the records' hex ids, so removing a
source removes exactly its rows and nothing needs renumbering.

Up to EXACT_LIMIT vectors the search is exact (a flat inner-product index).
Past it, exact search grows linearly with the corpus and holds 1.5 KB a
vector, so the store is an inverted-file index over 8-bit scalar-quantised
vectors (FAISS IVF-SQ8): a quarter of the memory, and each question scans
only the lists nearest to it. `qa info` says which one an index uses, and
`qa bench --scale` measures its recall against exact search.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import faiss
import numpy as np


def vector_key(record_id: str) -> int:
    """The int64 key of a 16-hex-digit record id (its first 60 bits, always positive)."""
    return int(record_id[:15], 16)


# FAISS threads per question search (see search_threads).
SEARCH_THREADS = 1


@contextmanager
def search_threads() -> Iterator[None]:
    """Run FAISS on SEARCH_THREADS OpenMP threads in the calling thread, restoring its count after.

    One question is one query vector: more threads save it little on a quiet
    machine, and on busy cores they wait on each other and their spinning
    takes the cores from the verifier's next run (`python -m
    qa.measure.search_threads` measures both ways). OpenMP keeps the count per
    calling thread, so a build in another thread keeps all of its threads.
    """
    saved = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(SEARCH_THREADS)
    try:
        yield
    finally:
        faiss.omp_set_num_threads(saved)


# In an approximate store, a restriction to at most this many records is
# searched exactly over their own vectors: the lists probed may miss them.
EXACT_SCOPE = 20_000


@dataclass(frozen=True)
class Scope:
    """A question restricted to some records: the mask over the store's keys, and the sources it was made from.

    Each store takes what it searches by: the FAISS stores the keys (`keys`,
    aligned with `allowed`), a Qdrant store the sources (all but
    `exclude_source`, and only `only` when given).
    """

    keys: np.ndarray
    allowed: np.ndarray
    exclude_source: str | None = None
    only: frozenset[str] | None = None


class VectorStore(Protocol):
    """What the index needs from a vector engine."""

    dimension: int
    trained_on: int

    @property
    def kind(self) -> str: ...

    def __len__(self) -> int: ...

    def add(self, keys: np.ndarray, vectors: np.ndarray) -> None: ...

    def remove(self, keys: np.ndarray) -> int: ...

    def vectors(self, keys: np.ndarray) -> np.ndarray: ...

    def search(self, query: np.ndarray, k: int, exclude: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]: ...

    def search_within(self, query: np.ndarray, k: int, scope: Scope) -> tuple[np.ndarray, np.ndarray]: ...

    def save(self, path: Path) -> str: ...


# Past this many vectors a store is approximate (IVF-SQ8); below it, exact.
EXACT_LIMIT = 100_000
# Lists an IVF store searches per question; stored in the index file.
IVF_PROBES = 48
# An IVF store's lists are reused by incremental builds until it holds this
# many times the vectors it was trained on; then it is trained again.
RETRAIN_GROWTH = 4


def ivf_lists(size: int) -> int:
    """Inverted lists for `size` vectors: about 4 sqrt(N), as FAISS's guidelines suggest,
    with at least 39 training vectors a list (fewer lists for a tiny store, as in tests)."""
    return max(1, min(max(64, int(4 * np.sqrt(size))), size // 39))


class FaissStore:
    """Inner-product search over unit vectors (cosine similarity) with FAISS: exact, or IVF-SQ8 when large."""

    def __init__(self, dimension: int, index: faiss.Index | None = None, trained_on: int = 0) -> None:
        self.dimension = dimension
        self._index = index if index is not None else faiss.IndexIDMap2(faiss.IndexFlatIP(dimension))
        # How many vectors an IVF store's lists were trained on (0 for exact stores).
        self.trained_on = trained_on

    @property
    def kind(self) -> str:
        """ "exact" or "ivf-sq8" (with its lists and probes), as `qa info` prints it."""
        ivf = self._ivf
        if ivf is None:
            return "exact"
        return f"ivf-sq8 ({ivf.nlist} lists, {ivf.nprobe} probed)"

    @property
    def _ivf(self) -> faiss.IndexIVF | None:
        try:
            return faiss.extract_index_ivf(self._index)
        except RuntimeError:  # not an IVF index
            return None

    @classmethod
    def assemble(
        cls,
        dimension: int,
        keys: np.ndarray,
        vectors: np.ndarray,
        previous: FaissStore | None = None,
        kept: np.ndarray | None = None,
        removed: np.ndarray | None = None,
        seed: int = 0,
    ) -> FaissStore:
        """A store of the `kept` keys of `previous` (the others in it are `removed`) plus the new `keys` and `vectors`.

        The kind follows the total size. A large store reuses the previous
        IVF store's trained lists (removing what is not kept) while it has
        grown less than RETRAIN_GROWTH times, so adding one document to a
        million sentences embeds and assigns only that document's vectors.
        That IVF store is taken over, not copied (a build loads it for this
        alone): `previous` must not be used afterwards.
        """
        kept = np.zeros(0, dtype=np.int64) if kept is None else np.asarray(kept, dtype=np.int64)
        total = len(kept) + len(keys)
        if total <= EXACT_LIMIT:
            store = cls(dimension)
            if previous is not None:
                store.add(kept, previous.vectors(kept))
            store.add(keys, vectors)
            return store
        if previous is not None and previous._ivf is not None and total <= RETRAIN_GROWTH * previous.trained_on:
            store = cls(dimension, previous._index, previous.trained_on)
            if removed is not None:
                store.remove(removed)
            store.add(keys, vectors)
            return store
        if previous is not None:
            keys = np.concatenate([kept, np.asarray(keys, dtype=np.int64)])
            vectors = np.concatenate([previous.vectors(kept), np.asarray(vectors, dtype=np.float32)])
        return cls.trained(dimension, keys, vectors, seed)

    @classmethod
    def trained(cls, dimension: int, keys: np.ndarray, vectors: np.ndarray, seed: int = 0) -> FaissStore:
        """An IVF-SQ8 store trained on (a sample of) these vectors, holding them all."""
        lists = ivf_lists(len(vectors))
        index = faiss.index_factory(dimension, f"IVF{lists},SQ8", faiss.METRIC_INNER_PRODUCT)
        sample_size = min(len(vectors), 64 * lists)
        sample = np.random.default_rng(seed).choice(len(vectors), sample_size, replace=False)
        index.train(np.ascontiguousarray(vectors[np.sort(sample)], dtype=np.float32))
        ivf = faiss.extract_index_ivf(index)
        ivf.nprobe = IVF_PROBES
        # Vectors by key (for candidates' cosines) need the key -> list map.
        ivf.set_direct_map_type(faiss.DirectMap.Hashtable)  # type: ignore[attr-defined]  # not in faiss's stubs
        store = cls(dimension, index, len(vectors))
        store.add(keys, vectors)
        return store

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

    def search(self, query: np.ndarray, k: int, exclude: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """The k best (scores, keys) for one query vector, best first, never one of the keys in `exclude`."""
        k = min(k, len(self))
        if k <= 0:
            return np.zeros(0, dtype=np.float32), np.zeros(0, dtype=np.int64)
        params: Any = None
        if exclude is not None and len(exclude):
            hidden = np.ascontiguousarray(exclude, dtype=np.int64)
            # FAISS skips the excluded keys while it searches, so the k found are k allowed ones.
            batch = faiss.IDSelectorBatch(hidden)
            selector = faiss.IDSelectorNot(batch)
            ivf = self._ivf
            # faiss's generated stubs do not know the keyword constructors its Python wrapper adds.
            if ivf is not None:
                params = faiss.SearchParametersIVF(sel=selector, nprobe=ivf.nprobe)  # type: ignore[call-arg]
            else:
                params = faiss.SearchParameters(sel=selector)  # type: ignore[call-arg]
        with search_threads():
            scores, keys = self._index.search(np.ascontiguousarray(query[None, :], dtype=np.float32), k, params=params)
        keep = keys[0] >= 0
        return scores[0][keep], keys[0][keep]

    def search_within(self, query: np.ndarray, k: int, scope: Scope) -> tuple[np.ndarray, np.ndarray]:
        """The k best (scores, keys) among the scope's allowed keys, best first.

        An approximate store searches a small scope exactly over its own
        vectors (the lists probed may miss them), a larger one skipping the rest.
        """
        if self.kind != "exact" and int(scope.allowed.sum()) <= EXACT_SCOPE:
            kept = scope.keys[scope.allowed]
            scores = self.vectors(kept) @ query
            order = np.argsort(-scores, kind="stable")[:k]
            return scores[order], kept[order]
        return self.search(query, k, exclude=scope.keys[~scope.allowed])

    def save(self, path: Path) -> str:
        """Write the store to `path` in FAISS's own format; returns the file's sha256, taken as it is written.

        Raises:
            OSError: the file cannot be written (read-only folder, full disk), with its errno.
        """
        digest = hashlib.sha256()

        def write(data: bytes) -> int:
            digest.update(data)
            return handle.write(data)

        # Through a Python file rather than faiss.write_index(index, path), whose
        # failures are RuntimeErrors carrying only a message; Python's carry the
        # errno (ENOSPC, EROFS) that a build turns into IndexWriteError.
        with path.open("wb") as handle:
            writer = faiss.PyCallbackIOWriter(write)  # type: ignore[attr-defined]  # not in faiss's stubs
            faiss.write_index(self._index, writer)
        return digest.hexdigest()

    @classmethod
    def load(cls, path: Path, trained_on: int = 0) -> FaissStore:
        """Read what save wrote; `trained_on` is what the manifest recorded for an IVF store."""
        index = faiss.read_index(str(path))
        return cls(index.d, index, trained_on)
