"""Builds over an index large enough to keep its segments: what is linked, what is written, what is merged.

The floor below which every build writes one segment is lowered to 1 here, so
these small corpora take the path a million-sentence index takes. The rules
themselves (qa/storage/segments.py) are in tests/storage/test_segments.py.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from builds import RecordingEncoder, write_docs

from qa.embed.encoder import Encoder
from qa.errors import IndexCorruptError
from qa.indexing import build_index
from qa.quotes import answer_question
from qa.reader.index import Index, load_index
from qa.storage import segments
from qa.storage.layout import read_texts
from qa.storage.lexical import tokenize

FIRST = {
    "rivers.txt": (
        "The Alder river floods every spring and covers the low meadows. "
        "Farmers along the Alder plant rice when the water falls back.\n\n"
        "A stone bridge over the Alder opened in 1902 and still carries carts.\n"
    ),
    "mountains.txt": (
        "Mount Corran is covered in snow for most of the year. "
        "Climbers reach its summit in July, when the passes are open.\n\n"
        "The first recorded ascent of Mount Corran was made by two shepherds.\n"
    ),
}
HARBOUR = "Port Ellis has a busy harbour where ferries leave for the islands every morning.\n"
ORCHARD = "The orchards of Vell grow apples and pears, picked by hand in late September.\n"


@pytest.fixture
def large(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every index counts as large: builds keep its segments."""
    monkeypatch.setattr(segments, "SEGMENT_FLOOR", 1)


def segment_names(index: Index) -> list[str]:
    return [entry.name for entry in index.manifest.segments]


def inode(index: Index, name: str) -> int:
    return (index.path / name).stat().st_ino


def test_adding_a_document_writes_one_segment_and_links_the_others(
    tmp_path: Path, encoder: Encoder, large: None
) -> None:
    seeds, index_dir = tmp_path / "seeds", tmp_path / "index"
    write_docs(seeds, FIRST)
    first = build_index(seeds, index_dir, encoder)
    write_docs(seeds, {"harbour.txt": HARBOUR})
    recorder = RecordingEncoder(encoder)
    second = build_index(seeds, index_dir, recorder)  # type: ignore[arg-type]

    assert second.report is not None and second.report.added == ["harbour.txt"]
    assert recorder.encoded and all(text in HARBOUR for text in recorder.encoded)  # only the new document
    assert segment_names(second) == [*segment_names(first), f"segment-{second.path.name.removeprefix('build-')}"]
    for name in segments.segment_files(segment_names(first)[0]):
        assert inode(second, name) == inode(first, name)  # the same file, not a copy
        assert second.manifest.files[name] == first.manifest.files[name]
    loaded = load_index(index_dir, encoder)  # every file checked, the linked ones too
    assert loaded.sentences == second.sentences and loaded.texts == second.texts
    for question, source in [
        ("When did the bridge over the Alder open?", "rivers.txt"),
        ("Where do ferries leave for the islands?", "harbour.txt"),
    ]:
        answer = answer_question(loaded, question)
        assert answer.quotes and answer.quotes[0].source == source
        quote = answer.quotes[0]
        assert loaded.source_text(source)[quote.start : quote.end] == quote.text


def test_segmented_bm25_weighs_terms_as_one_index_over_the_same_texts(
    tmp_path: Path, encoder: Encoder, large: None
) -> None:
    seeds, index_dir = tmp_path / "seeds", tmp_path / "index"
    write_docs(seeds, FIRST)
    build_index(seeds, index_dir, encoder)
    write_docs(seeds, {"harbour.txt": HARBOUR, "orchard.txt": ORCHARD})
    segmented = build_index(seeds, index_dir, encoder)
    whole = build_index(seeds, tmp_path / "whole", encoder, full=True)
    assert len(segmented.manifest.segments) == 2 and len(whole.manifest.segments) == 1
    # An incremental build puts kept sources first: compare row by row through the ids.
    ids = [sentence.id for sentence in segmented.sentences]
    order = np.asarray([ids.index(sentence.id) for sentence in whole.sentences])
    assert sorted(ids) == sorted(sentence.id for sentence in whole.sentences)
    texts = list(segmented.tables.sentence_texts())
    rows = np.arange(len(texts))
    for token in {token for words in tokenize(texts) for token in words}:
        assert segmented.sentence_lexical.idf(token) == pytest.approx(whole.sentence_lexical.idf(token))
        np.testing.assert_array_equal(
            segmented.sentence_lexical.holding(token, order), whole.sentence_lexical.holding(token, rows)
        )
    for question in ["Alder river bridge", "ferries islands harbour", "apples pears September"]:
        tokens = tokenize([question])[0]
        got, want = segmented.sentence_lexical.scores(tokens)[order], whole.sentence_lexical.scores(tokens)
        # Only each segment's length normalisation differs from one index's.
        assert int(np.argmax(got)) == int(np.argmax(want))
        np.testing.assert_allclose(got, want, rtol=0.25)
        assert (got > 0).tolist() == (want > 0).tolist()


def test_a_removed_document_is_never_found_in_the_segment_that_keeps_its_rows(
    tmp_path: Path, encoder: Encoder, large: None
) -> None:
    seeds, index_dir = tmp_path / "seeds", tmp_path / "index"
    write_docs(seeds, {**FIRST, "harbour.txt": HARBOUR})
    first = build_index(seeds, index_dir, encoder)
    (seeds / "harbour.txt").unlink()  # a small part of the one segment
    second = build_index(seeds, index_dir, encoder)
    assert segment_names(second) == segment_names(first)  # kept: it lost less than half its rows
    assert second.manifest.segments[0].sentences == len(first.sentences) > len(second.sentences)
    assert "harbour.txt" not in second.sources and "harbour.txt" not in load_index(index_dir, encoder).texts
    tokens = tokenize(["ferries harbour islands"])[0]
    assert len(second.sentence_lexical.scores(tokens)) == len(second.sentences)
    assert not second.sentence_lexical.scores(tokens).any()  # its rows are still in the files, never scored
    answer = answer_question(second, "Where do ferries leave for the islands?")
    assert all(item.source != "harbour.txt" for item in [*answer.quotes, *answer.related])
    assert answer_question(second, "When do climbers reach the summit?").quotes[0].source == "mountains.txt"


def test_a_segment_that_lost_most_of_its_rows_is_merged(tmp_path: Path, encoder: Encoder, large: None) -> None:
    seeds, index_dir = tmp_path / "seeds", tmp_path / "index"
    write_docs(seeds, FIRST)
    first = build_index(seeds, index_dir, encoder)
    write_docs(seeds, {"harbour.txt": HARBOUR})
    second = build_index(seeds, index_dir, encoder)
    (seeds / "rivers.txt").unlink()
    (seeds / "mountains.txt").write_text("Mount Corran has been closed to climbers since 1990.\n", encoding="utf-8")
    third = build_index(seeds, index_dir, encoder)
    # The first segment has no live rows left: merged away; the harbour's is kept as it is.
    assert segment_names(first)[0] not in segment_names(third)
    assert segment_names(third)[0] == segment_names(second)[1]
    assert sorted(third.sources) == ["harbour.txt", "mountains.txt"]
    assert answer_question(third, "Since when is Mount Corran closed?").quotes[0].source == "mountains.txt"


def test_segments_stay_few_however_many_documents_are_added(tmp_path: Path, encoder: Encoder, large: None) -> None:
    seeds, index_dir = tmp_path / "seeds", tmp_path / "index"
    write_docs(seeds, FIRST)
    build_index(seeds, index_dir, encoder)
    counts = []
    for number in range(segments.MAX_SEGMENTS + 2):
        write_docs(seeds, {f"town-{number}.txt": f"Town number {number} holds a market on the {number}th day.\n"})
        counts.append(len(build_index(seeds, index_dir, encoder).manifest.segments))
    assert max(counts) == segments.MAX_SEGMENTS and counts[-1] < segments.MAX_SEGMENTS
    index = load_index(index_dir, encoder)
    assert len(index.sources) == 2 + segments.MAX_SEGMENTS + 2
    assert answer_question(index, "Which town holds a market on the 3th day?").quotes[0].source == "town-3.txt"


def test_a_linked_file_damaged_in_place_is_checked_and_not_carried(
    tmp_path: Path, encoder: Encoder, large: None, caplog: pytest.LogCaptureFixture
) -> None:
    seeds, index_dir = tmp_path / "seeds", tmp_path / "index"
    write_docs(seeds, FIRST)
    first = build_index(seeds, index_dir, encoder)
    windows = next(first.path.glob(f"segments/*/{segments.WINDOWS}"))
    data = bytearray(windows.read_bytes())
    data[-1] ^= 0xFF
    windows.write_bytes(bytes(data))
    stat = (first.path / "manifest.json").stat()
    os.utime(windows, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))
    with pytest.raises(IndexCorruptError, match=r"windows\.npy"):
        load_index(index_dir, encoder)
    write_docs(seeds, {"harbour.txt": HARBOUR})
    rebuilt = build_index(seeds, index_dir, encoder)
    assert rebuilt.report is not None and rebuilt.report.full
    assert "cannot reuse the live index" in caplog.text and "windows.npy" in caplog.text
    assert load_index(index_dir, encoder).sentences == rebuilt.sentences


def test_a_changed_document_is_read_from_its_new_segment_only(tmp_path: Path, encoder: Encoder, large: None) -> None:
    seeds, index_dir = tmp_path / "seeds", tmp_path / "index"
    write_docs(seeds, {**FIRST, "harbour.txt": HARBOUR})
    first = build_index(seeds, index_dir, encoder)
    changed = "Mount Corran was renamed Mount Ardel in 1921 by the county council.\n"
    (seeds / "mountains.txt").write_text(changed, encoding="utf-8")
    second = build_index(seeds, index_dir, encoder)
    # The old rows stay, unreferenced, in the kept segment; its texts file still holds the old text.
    assert segment_names(second)[0] == segment_names(first)[0] and len(second.manifest.segments) == 2
    loaded = load_index(index_dir, encoder)
    assert loaded.source_text("mountains.txt") == changed
    # Read without loading the index (as the load test checks answers): the newest segment's text, by manifest order.
    assert read_texts(loaded.path)["mountains.txt"] == changed
    answer = answer_question(loaded, "What was Mount Corran renamed?")
    quote = answer.quotes[0]
    assert quote.source == "mountains.txt" and "Mount Ardel" in quote.text
    assert loaded.source_text("mountains.txt")[quote.start : quote.end] == quote.text
    climbers = answer_question(loaded, "When do climbers reach the summit of Mount Corran?")
    assert all("July" not in item.text for item in [*climbers.quotes, *climbers.related])
