"""Word-window vectors on disk: read by sentence row with pread, written as they are made.

They only rescore candidates, so they need no index (qa/storage/vectors.py
holds the searched stores); a build streams each segment's to its file
(WindowWriter) and a loaded index reads the rows a question needs (RowFile).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

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
