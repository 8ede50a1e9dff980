"""Passages and sentences as columns of numbers, not one Python object each.

A million sentences as dataclasses would take gigabytes and many seconds to
read; as columns they take about 30 bytes each and load in one read. A
`Passage` or `Sentence` is made only when one is asked for, and its text is
sliced from the source text it points into, so no text is stored twice.

On disk (in a build folder): `passages.npy` and `sentences.npy` hold
structured arrays, and `sources.json` the source paths and section titles
that the arrays refer to by number.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any, TypeVar, overload

import numpy as np

from qa.records import Document, Passage, Sentence
from qa.split import word_windows

PASSAGE_COLUMNS = np.dtype(
    [
        ("id", "<u8"),
        ("source", "<i4"),
        ("paragraph", "<i4"),
        ("line", "<i4"),
        ("section", "<i4"),  # -1: no section
        ("page", "<i4"),  # -1: no pages
        ("start", "<i8"),
        ("end", "<i8"),
        ("segment", "<i2"),
        ("segment_row", "<i4"),
    ]
)
# A sentence's source, paragraph, line, section and page are its passage's
# (qa/split.py); `windows` is how many word windows it has (qa/storage/windows.py).
# A record's `segment` is the build's segment whose BM25 (and, for a sentence,
# word windows) hold it, at `segment_row` (and from `first_window`):
# qa/storage/segments.py. Freshly split records are one segment, numbered 0.
SENTENCE_COLUMNS = np.dtype(
    [
        ("id", "<u8"),
        ("passage", "<i4"),
        ("start", "<i8"),
        ("end", "<i8"),
        ("windows", "<i4"),
        ("segment", "<i2"),
        ("segment_row", "<i4"),
        ("first_window", "<i8"),
    ]
)
TABLE_FILES = ("passages.npy", "sentences.npy", "sources.json")
_R = TypeVar("_R", Passage, Sentence)


def _hex(value: int) -> str:
    return f"{value:016x}"


@dataclass
class Tables:
    """The passages and sentences of a build, as columns, with the texts they slice."""

    passages: np.ndarray  # PASSAGE_COLUMNS, one row per passage
    sentences: np.ndarray  # SENTENCE_COLUMNS, one row per sentence; `passage` is a passage row
    sources: list[str]  # what passages' `source` numbers name
    sections: list[str]  # what passages' `section` numbers name
    texts: dict[str, str]  # source -> the text its records slice

    @classmethod
    def empty(cls) -> Tables:
        return cls(np.zeros(0, PASSAGE_COLUMNS), np.zeros(0, SENTENCE_COLUMNS), [], [], {})

    @classmethod
    def from_documents(cls, documents: Iterable[Document]) -> Tables:
        """Columns of freshly split documents."""
        sources: list[str] = []
        sections: dict[str, int] = {}
        passage_rows: list[tuple[int, ...]] = []
        sentence_rows: list[tuple[int, ...]] = []
        texts: dict[str, str] = {}
        first_window = 0
        for document in documents:
            source_number = len(sources)
            sources.append(document.source)
            texts[document.source] = document.text
            row_of = {}
            for passage in document.passages:
                row_of[passage.id] = len(passage_rows)
                section = -1 if passage.section is None else sections.setdefault(passage.section, len(sections))
                page = -1 if passage.page is None else passage.page
                passage_rows.append(
                    (
                        int(passage.id, 16),
                        source_number,
                        passage.paragraph,
                        passage.line,
                        section,
                        page,
                        passage.start,
                        passage.end,
                        0,
                        len(passage_rows),
                    )
                )
            for sentence in document.sentences:
                windows = len(word_windows(sentence.text, 0, len(sentence.text)))
                sentence_rows.append(
                    (
                        int(sentence.id, 16),
                        row_of[sentence.passage_id],
                        sentence.start,
                        sentence.end,
                        windows,
                        0,
                        len(sentence_rows),
                        first_window,
                    )
                )
                first_window += windows
        return cls(
            np.array(passage_rows, dtype=PASSAGE_COLUMNS),
            np.array(sentence_rows, dtype=SENTENCE_COLUMNS),
            sources,
            list(sections),
            texts,
        )

    def keep_sources(self, keep: set[str]) -> Tables:
        """The records of the sources in `keep` only, in their order here."""
        kept_sources = [s for s in self.sources if s in keep]
        renumber = np.full(len(self.sources), -1, dtype=np.int32)
        for new, source in enumerate(kept_sources):
            renumber[self._source_number[source]] = new
        passage_kept = renumber[self.passages["source"]] >= 0
        passages = self.passages[passage_kept].copy()
        passages["source"] = renumber[passages["source"]]
        new_passage_row = np.cumsum(passage_kept, dtype=np.int64) - 1
        sentence_kept = passage_kept[self.sentences["passage"]]
        sentences = self.sentences[sentence_kept].copy()
        sentences["passage"] = new_passage_row[sentences["passage"]]
        return Tables(passages, sentences, kept_sources, self.sections, {s: self.texts[s] for s in kept_sources})

    def extend(self, other: Tables) -> Tables:
        """These records followed by `other`'s, which must be of other sources."""
        if set(self.sources) & set(other.sources):
            raise ValueError("cannot join tables that share a source")
        sections = list(self.sections)
        section_number = {title: number for number, title in enumerate(sections)}
        section_map = np.asarray(
            [section_number.setdefault(title, len(section_number)) for title in other.sections] + [-1], dtype=np.int32
        )
        sections = list(section_number)
        passages = other.passages.copy()
        passages["source"] += len(self.sources)
        passages["section"] = section_map[passages["section"]]  # -1 indexes the trailing -1
        sentences = other.sentences.copy()
        sentences["passage"] += len(self.passages)
        return Tables(
            np.concatenate([self.passages, passages]),
            np.concatenate([self.sentences, sentences]),
            [*self.sources, *other.sources],
            sections,
            {**self.texts, **other.texts},
        )

    @cached_property
    def _source_number(self) -> dict[str, int]:
        return {source: number for number, source in enumerate(self.sources)}

    def source_numbers(self, sources: Iterable[str]) -> np.ndarray:
        """The numbers of these sources (unknown ones left out)."""
        return np.asarray([self._source_number[s] for s in sources if s in self._source_number], dtype=np.int32)

    @cached_property
    def sentence_source(self) -> np.ndarray:
        """Each sentence row's source number."""
        return self.passages["source"][self.sentences["passage"]]

    @cached_property
    def passage_bounds(self) -> tuple[np.ndarray, np.ndarray]:
        """Sentence rows grouped by passage: rows `order[bounds[p]:bounds[p + 1]]` belong to passage p."""
        order = np.argsort(self.sentences["passage"], kind="stable")
        bounds = np.searchsorted(self.sentences["passage"][order], np.arange(len(self.passages) + 1))
        return order, bounds

    def passage_sentence_rows(self, passage_row: int) -> np.ndarray:
        """The sentence rows of one passage, in reading order."""
        order, bounds = self.passage_bounds
        return order[bounds[passage_row] : bounds[passage_row + 1]]

    def passage(self, row: int) -> Passage:
        p = self.passages[row]
        start, end = int(p["start"]), int(p["end"])
        return Passage(id=_hex(int(p["id"])), start=start, end=end, **self._place(p, start, end))

    def sentence(self, row: int) -> Sentence:
        s = self.sentences[row]
        p = self.passages[int(s["passage"])]
        start, end = int(s["start"]), int(s["end"])
        return Sentence(
            id=_hex(int(s["id"])), passage_id=_hex(int(p["id"])), start=start, end=end, **self._place(p, start, end)
        )

    def _place(self, p: np.void, start: int, end: int) -> dict[str, Any]:
        """What a record shares with its passage row `p`: source, paragraph, line, section, page; and its text."""
        source = self.sources[int(p["source"])]
        return {
            "source": source,
            "paragraph": int(p["paragraph"]),
            "line": int(p["line"]),
            "section": None if p["section"] < 0 else self.sections[int(p["section"])],
            "page": None if p["page"] < 0 else int(p["page"]),
            "text": self.texts[source][start:end],
        }

    def sentence_text(self, row: int) -> str:
        s = self.sentences[row]
        source = self.sources[int(self.passages["source"][int(s["passage"])])]
        return self.texts[source][int(s["start"]) : int(s["end"])]

    def sentence_texts(self, rows: Iterable[int] | None = None) -> Iterator[str]:
        """The sentences' texts (all, or these rows), in row order, without making records."""
        sources = self.sentence_source
        for row in range(len(self.sentences)) if rows is None else rows:
            s = self.sentences[row]
            yield self.texts[self.sources[sources[row]]][int(s["start"]) : int(s["end"])]

    def passage_texts(self, rows: Iterable[int] | None = None) -> Iterator[str]:
        """The passages' texts (all, or these rows), in row order."""
        for row in range(len(self.passages)) if rows is None else rows:
            p = self.passages[row]
            yield self.texts[self.sources[int(p["source"])]][int(p["start"]) : int(p["end"])]

    def save(self, folder: Path) -> None:
        """Write the columns and the names they refer to (texts are written by the build, beside them)."""
        np.save(folder / "passages.npy", self.passages, allow_pickle=False)
        np.save(folder / "sentences.npy", self.sentences, allow_pickle=False)
        names = {"sources": self.sources, "sections": self.sections}
        (folder / "sources.json").write_text(json.dumps(names, ensure_ascii=False) + "\n", encoding="utf-8")

    @classmethod
    def load(cls, folder: Path, texts: dict[str, str]) -> Tables:
        """Read what save wrote.

        Raises:
            OSError, ValueError, KeyError: a file is missing, unreadable or not what save writes.
        """
        passages = np.load(folder / "passages.npy", allow_pickle=False)
        sentences = np.load(folder / "sentences.npy", allow_pickle=False)
        if passages.dtype != PASSAGE_COLUMNS or sentences.dtype != SENTENCE_COLUMNS:
            raise ValueError("record columns of another layout")
        names = json.loads((folder / "sources.json").read_text(encoding="utf-8"))
        sources, sections = [str(s) for s in names["sources"]], [str(s) for s in names["sections"]]
        missing = [s for s in sources if s not in texts]
        if missing:
            raise KeyError(f"no text for {missing[0]}")
        # A segment keeps the texts of sources removed since it was written; they are not this build's.
        return cls(passages, sentences, sources, sections, {source: texts[source] for source in sources})


class _View(Sequence[_R]):
    """A build's records of one kind as a read-only sequence, each made on access from the columns."""

    def __init__(self, tables: Tables) -> None:
        self._tables = tables

    def _count(self) -> int:
        raise NotImplementedError

    def _make(self, row: int) -> _R:
        raise NotImplementedError

    def __len__(self) -> int:
        return self._count()

    @overload
    def __getitem__(self, row: int) -> _R: ...
    @overload
    def __getitem__(self, row: slice) -> list[_R]: ...
    def __getitem__(self, row: int | slice) -> _R | list[_R]:
        if isinstance(row, slice):
            return [self._make(number) for number in range(*row.indices(len(self)))]
        if not -len(self) <= row < len(self):
            raise IndexError(row)
        return self._make(row % len(self))

    def __eq__(self, other: object) -> bool:
        """Equal to a sequence of the same records in the same order."""
        if not isinstance(other, Sequence) or isinstance(other, str):
            return NotImplemented
        return len(self) == len(other) and all(a == b for a, b in zip(self, other, strict=True))

    __hash__ = None  # type: ignore[assignment]  # mutable-looking, like a list


class SentenceView(_View[Sentence]):
    """The sentences of a build, made on access."""

    def _count(self) -> int:
        return len(self._tables.sentences)

    def _make(self, row: int) -> Sentence:
        return self._tables.sentence(row)


class PassageView(_View[Passage]):
    """The passages of a build, made on access."""

    def _count(self) -> int:
        return len(self._tables.passages)

    def _make(self, row: int) -> Passage:
        return self._tables.passage(row)


class KeyRows:
    """Rows by vector key without a dict of a million entries: a sorted copy of the keys, searched."""

    def __init__(self, keys: np.ndarray) -> None:
        self._order = np.argsort(keys, kind="stable")
        self._sorted = np.asarray(keys)[self._order]

    def rows(self, keys: np.ndarray) -> np.ndarray:
        """The row of each key, -1 for a key not held."""
        keys = np.asarray(keys, dtype=np.int64)
        if not len(self._sorted):
            return np.full(len(keys), -1, dtype=np.int64)
        places = np.minimum(np.searchsorted(self._sorted, keys), len(self._sorted) - 1)
        return np.where(self._sorted[places] == keys, self._order[places], -1).astype(np.int64)


def record_key(ids: np.ndarray) -> np.ndarray:
    """The int64 vector keys of 64-bit record ids (their first 60 bits, as qa.storage.vectors.vector_key)."""
    return (np.asarray(ids, dtype=np.uint64) >> np.uint64(4)).astype(np.int64)
