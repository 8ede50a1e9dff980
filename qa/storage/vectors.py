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
import os
from pathlib import Path
from typing import Any, Protocol

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

    def search(self, query: np.ndarray, k: int, exclude: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]: ...

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
        scores, keys = self._index.search(np.ascontiguousarray(query[None, :], dtype=np.float32), k, params=params)
        keep = keys[0] >= 0
        return scores[0][keep], keys[0][keep]

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


_READ_BYTES = 1 << 26  # 64 MiB a read


class RowFile:
    """The rows of a 2-D .npy file, read with pread on demand.

    Not memory-mapped: pages a mapping touches count toward the process's
    resident memory for as long as they stay cached, and questions touch a
    few thousand scattered rows each. Read this way they stay in the page
    cache, which the kernel reclaims, not in the process.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        with path.open("rb") as handle:
            version = np.lib.format.read_magic(handle)
            if version == (1, 0):
                shape, fortran, dtype = np.lib.format.read_array_header_1_0(handle)
            elif version == (2, 0):
                shape, fortran, dtype = np.lib.format.read_array_header_2_0(handle)
            else:
                raise ValueError(f"{path} is a .npy file of version {version}, not 1.0 or 2.0")
            self.offset = handle.tell()
        if len(shape) != 2 or fortran:
            raise ValueError(f"{path} does not hold a 2-D array in row order")
        self.shape: tuple[int, int] = (int(shape[0]), int(shape[1]))
        self.dtype = np.dtype(dtype)
        self._row_bytes = self.shape[1] * self.dtype.itemsize
        if path.stat().st_size != self.offset + self.shape[0] * self._row_bytes:
            raise ValueError(f"{path} is not as long as its header says")

    def __len__(self) -> int:
        return self.shape[0]

    def take(self, rows: np.ndarray) -> np.ndarray:
        """These rows, in this order (one read per run of consecutive rows)."""
        rows = np.asarray(rows, dtype=np.int64)
        out = np.empty((len(rows), self.shape[1]), dtype=self.dtype)
        if not len(rows):
            return out
        # Rows asked for in file order (an incremental build's kept windows) are copied in place.
        in_order = bool(np.all(rows[1:] >= rows[:-1]))
        order = np.arange(len(rows)) if in_order else np.argsort(rows, kind="stable")
        ordered = rows if in_order else rows[order]
        breaks = np.flatnonzero(np.diff(ordered) != 1) + 1
        descriptor = os.open(self.path, os.O_RDONLY)
        try:
            position = 0
            # One read returns at most about 2 GB (Linux), so long runs go in pieces.
            most = max(1, _READ_BYTES // self._row_bytes)
            for run in np.split(ordered, breaks):
                for first in range(0, len(run), most):
                    piece = run[first : first + most]
                    data = self._read(descriptor, int(piece[0]), len(piece)).reshape(len(piece), -1)
                    if in_order:
                        out[position : position + len(piece)] = data
                    else:
                        out[order[position : position + len(piece)]] = data
                    position += len(piece)
        finally:
            os.close(descriptor)
        return out

    def _read(self, descriptor: int, first: int, count: int) -> np.ndarray:
        """`count` rows from row `first`, however many reads the kernel needs for them."""
        wanted = count * self._row_bytes
        buffer = bytearray(wanted)
        view = memoryview(buffer)
        done = 0
        while done < wanted:
            got = os.preadv(descriptor, [view[done:]], self.offset + first * self._row_bytes + done)
            if got == 0:
                raise OSError(f"{self.path} ended early")
            done += got
        return np.frombuffer(buffer, dtype=self.dtype)

    def __getitem__(self, key: slice | np.ndarray) -> np.ndarray:
        if isinstance(key, slice):
            return self.take(np.arange(*key.indices(len(self))))
        return self.take(np.asarray(key))

    def __array__(self, dtype: Any = None, copy: Any = None) -> np.ndarray:
        every = self.take(np.arange(len(self)))
        return every if dtype is None else every.astype(dtype)


class WindowVectors:
    """The vectors of sentences' word windows as float16, read by sentence row; on disk once built.

    They only rescore candidates (a sentence's best window cosine), never
    search, so they need no index and stay on disk (RowFile) but for the rows
    read: a million sentences' 3.4 million windows take 2.6 GB of file and
    almost no memory. They are kept in one file per segment
    (qa/storage/segments.py); each sentence row names its part and its first
    row there, and its windows follow that row.
    """

    def __init__(
        self,
        parts: np.ndarray | RowFile | list[np.ndarray | RowFile],
        counts: np.ndarray,
        part_of_row: np.ndarray | None = None,
        first_row: np.ndarray | None = None,
    ) -> None:
        """One part holding every sentence's windows in row order, or parts with each row's part and first window row."""
        self.parts = parts if isinstance(parts, list) else [parts]
        self.counts = np.asarray(counts, dtype=np.int64)  # windows per sentence row
        if part_of_row is None or first_row is None:
            if len(self.parts) != 1 or int(self.counts.sum()) != len(self.parts[0]):
                raise ValueError(
                    f"{sum(len(p) for p in self.parts)} window vectors for sentences that have {self.counts.sum()}"
                )
            part_of_row = np.zeros(len(self.counts), dtype=np.int16)
            first_row = np.cumsum(self.counts) - self.counts
        self.part_of_row = np.asarray(part_of_row, dtype=np.int64)
        self.first_row = np.asarray(first_row, dtype=np.int64)
        ends = self.first_row + self.counts
        for number, part in enumerate(self.parts):
            mine = self.part_of_row == number
            if mine.any() and int(ends[mine].max()) > len(part):
                raise ValueError(f"sentences point past the {len(part)} window vectors of part {number}")

    def __len__(self) -> int:
        return int(self.counts.sum())

    def _window_rows(self, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """For these sentence rows' windows: each one's part, its row in that part, and its sentence's position in `rows`."""
        rows = np.asarray(rows, dtype=np.int64)
        counts = self.counts[rows]
        owners = np.repeat(np.arange(len(rows)), counts)
        starts = np.repeat(self.first_row[rows], counts)
        within = np.arange(len(owners)) - np.repeat(np.cumsum(counts) - counts, counts)
        return np.repeat(self.part_of_row[rows], counts), starts + within, owners

    def best_cosines(self, rows: np.ndarray, query: np.ndarray, own: np.ndarray) -> np.ndarray:
        """For each sentence row, the larger of its own cosine `own` and its best window's."""
        best = np.asarray(own, dtype=np.float32).copy()
        parts, window_rows, owners = self._window_rows(rows)
        if len(window_rows):
            cosines = self._rows(parts, window_rows).astype(np.float32) @ query
            np.maximum.at(best, owners, cosines)
        return best

    def of_sentences(self, rows: np.ndarray) -> np.ndarray:
        """The window vectors of these sentence rows, in their order (as an incremental build keeps them)."""
        return self._rows(*self._window_rows(rows)[:2]).astype(np.float16, copy=False)

    def in_row_order(self) -> tuple[np.ndarray, np.ndarray]:
        """Every window vector in sentence row order, and bounds: row r's are `vectors[bounds[r]:bounds[r + 1]]`."""
        bounds = np.concatenate([[0], np.cumsum(self.counts)])
        return self.of_sentences(np.arange(len(self.counts))), bounds

    def _rows(self, parts: np.ndarray, window_rows: np.ndarray) -> np.ndarray:
        dimension = self.parts[0].shape[1] if self.parts else 0
        out = np.empty((len(window_rows), dimension), dtype=np.float16)
        for number in np.unique(parts):
            mine = parts == number
            part = self.parts[int(number)]
            out[mine] = (
                part.take(window_rows[mine]) if isinstance(part, RowFile) else np.asarray(part[window_rows[mine]])
            )
        return out

    def save(self, path: Path) -> None:
        """Write one part's vectors as a .npy file (a build streams its new part with WindowWriter instead)."""
        if len(self.parts) != 1:
            raise ValueError("window vectors of several parts are written part by part")
        np.save(path, np.asarray(self.parts[0], dtype=np.float16), allow_pickle=False)

    @classmethod
    def load(
        cls,
        paths: Path | list[Path],
        counts: np.ndarray,
        part_of_row: np.ndarray | None = None,
        first_row: np.ndarray | None = None,
    ) -> WindowVectors:
        """What save or WindowWriter wrote, read on demand; `counts` are the sentences' window counts.

        Raises:
            OSError, ValueError: a file is missing, unreadable or not float16 rows.
        """
        parts: list[np.ndarray | RowFile] = []
        for path in paths if isinstance(paths, list) else [paths]:
            vectors = RowFile(path)
            if vectors.dtype != np.float16:
                raise ValueError(f"{path} does not hold float16 window vectors")
            parts.append(vectors)
        return cls(parts, counts, part_of_row, first_row)


class WindowWriter:
    """Writes a part's window vectors to a .npy file as they are made, so a build never holds them all.

    The number of rows is known before the first is embedded (each sentence's
    window count), so the header is written first and the rows appended.
    """

    def __init__(self, path: Path, rows: int, dimension: int) -> None:
        self.path = path
        self.rows = rows
        self.written = 0
        self._handle = open(path, "wb")  # noqa: SIM115  # closed by close(), after the last block
        header = {
            "descr": np.lib.format.dtype_to_descr(np.dtype(np.float16)),
            "fortran_order": False,
            "shape": (rows, dimension),
        }
        np.lib.format.write_array_header_2_0(self._handle, header)
        self._dimension = dimension

    def write(self, vectors: np.ndarray) -> None:
        """Append these rows."""
        block = np.ascontiguousarray(vectors, dtype=np.float16)
        if block.ndim != 2 or block.shape[1] != self._dimension or self.written + len(block) > self.rows:
            raise ValueError(f"{block.shape} more window vectors for a file of {self.rows} rows of {self._dimension}")
        self._handle.write(block.tobytes())
        self.written += len(block)

    def abandon(self) -> None:
        """Close the file half written (its build failed and removes it)."""
        self._handle.close()

    def close(self) -> None:
        """Finish the file; every row must have been written."""
        self._handle.close()
        if self.written != self.rows:
            raise ValueError(f"{self.written} window vectors written to a file of {self.rows}")
