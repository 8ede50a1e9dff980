"""The segment rules: which segments a build keeps, and how records are numbered into the new one."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from qa.records import Document, Passage, Sentence
from qa.storage import segments
from qa.storage.manifest import SegmentEntry
from qa.storage.tables import Tables


def document(source: str, sentences: int) -> Document:
    text = " ".join(f"Sentence {number} of {source} has words." for number in range(sentences))
    passage = Passage(
        id=f"{sum(map(ord, source)) * 16:016x}",
        source=source,
        paragraph=0,
        line=1,
        section=None,
        page=None,
        start=0,
        end=len(text),
        text=text,
    )
    rows, start = [], 0
    for number in range(sentences):
        part = f"Sentence {number} of {source} has words."
        rows.append(
            Sentence(
                id=f"{(sum(map(ord, source)) * 100 + number) * 16:016x}",
                passage_id=passage.id,
                source=source,
                paragraph=0,
                line=1,
                section=None,
                page=None,
                start=start,
                end=start + len(part),
                text=part,
            )
        )
        start += len(part) + 1
    return Document(source=source, sha256="0" * 64, text=text, passages=(passage,), sentences=tuple(rows))


def kept_rows(live: list[int]) -> Tables:
    """Kept records with `live[n]` sentences in old segment n."""
    tables = Tables.from_documents(document(f"s{n}.txt", count) for n, count in enumerate(live) if count)
    numbers = np.repeat([n for n, count in enumerate(live) if count], [count for count in live if count])
    tables.sentences["segment"] = numbers
    return tables


@pytest.fixture
def floor(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(segments, "SEGMENT_FLOOR", 10)


def entries(sizes: list[int]) -> list[SegmentEntry]:
    return [SegmentEntry(f"s{n}", size, 1, 0) for n, size in enumerate(sizes)]


def test_a_small_index_is_merged_into_one_segment(floor: None) -> None:
    assert segments.carried(entries([5, 3]), kept_rows([5, 3])) == []


def test_a_segment_is_kept_while_it_holds_more_than_half_its_rows(floor: None) -> None:
    assert segments.carried(entries([20, 10, 10]), kept_rows([20, 6, 5])) == [0, 1]


def test_too_many_segments_merge_into_the_largest(floor: None) -> None:
    sizes = [40, *[2] * segments.MAX_SEGMENTS]
    assert segments.carried(entries(sizes), kept_rows(sizes)) == [0]


def test_assign_keeps_carried_rows_and_numbers_the_new_segment_in_row_order() -> None:
    old = Tables.from_documents([document("a.txt", 3), document("b.txt", 2)])
    old.sentences["segment"] = [0, 0, 0, 1, 1]
    old.passages["segment"] = [0, 1]
    old.sentences["windows"] = [1, 2, 0, 4, 1]
    new = Tables.from_documents([document("c.txt", 2)])
    tables, sentence_members, passage_members = segments.assign(old.extend(new), [1], 5, 2)
    assert tables.sentences["segment"].tolist() == [1, 1, 1, 0, 0, 1, 1]
    assert sentence_members.tolist() == [0, 1, 2, 5, 6] and passage_members.tolist() == [0, 2]
    assert tables.sentences["segment_row"].tolist() == [0, 1, 2, 3, 4, 3, 4]
    assert tables.sentences["first_window"][sentence_members].tolist() == [
        0,
        1,
        3,
        3,
        3 + int(new.sentences["windows"][0]),
    ]
    assert tables.passages["segment"].tolist() == [1, 0, 1] and tables.passages["segment_row"].tolist() == [0, 1, 1]


def test_files_changed_since_their_build_are_named(tmp_path: Path) -> None:
    (tmp_path / "a").write_text("a")
    (tmp_path / "b").write_text("b")
    (tmp_path / "manifest.json").write_text("{}")
    written = (tmp_path / "manifest.json").stat().st_mtime_ns
    os.utime(tmp_path / "a", ns=(written, written - 1))
    os.utime(tmp_path / "b", ns=(written, written + 1))
    names = ["a", "b", "missing"]
    assert segments.touched_since(tmp_path, names, tmp_path / "manifest.json") == ["b", "missing"]


def test_linked_files_are_the_same_file(tmp_path: Path) -> None:
    (tmp_path / "old" / "segments" / "x").mkdir(parents=True)
    (tmp_path / "old" / "segments" / "x" / "windows.npy").write_bytes(b"vectors")
    segments.link_files(tmp_path / "old", tmp_path / "new", ["segments/x/windows.npy"])
    linked = tmp_path / "new" / "segments" / "x" / "windows.npy"
    assert linked.read_bytes() == b"vectors"
    assert linked.stat().st_ino == (tmp_path / "old" / "segments" / "x" / "windows.npy").stat().st_ino
