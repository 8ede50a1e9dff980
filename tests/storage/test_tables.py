"""Record columns: records made from them equal the split ones, through selection, joining and a file round trip."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from qa.ingest.seeds import read_sources
from qa.records import Document
from qa.split import split_document
from qa.storage.tables import KeyRows, PassageView, SentenceView, Tables, record_key
from qa.storage.vectors import vector_key

DOCS = {
    "a.md": "# Intro\n\nThe first paragraph. It has two sentences.\n\n## Details\n\nA detail follows here.\n",
    "b.txt": "Bravo is a plain text.\n\nIt has a second paragraph.\n",
    "notes/c.md": "# Details\n\nThe same section title as in a.md.\n",
}


def documents(tmp_path: Path, names: list[str]) -> list[Document]:
    seeds = tmp_path / "seeds"
    for name in names:
        (seeds / name).parent.mkdir(parents=True, exist_ok=True)
        (seeds / name).write_text(DOCS[name], encoding="utf-8")
    readable, _ = read_sources(seeds, 10)
    return [split_document(f) for f in readable if f.source in names]


def test_records_made_from_columns_equal_the_split_records(tmp_path: Path) -> None:
    docs = documents(tmp_path, sorted(DOCS))
    tables = Tables.from_documents(docs)
    assert list(SentenceView(tables)) == [s for d in docs for s in d.sentences]
    assert list(PassageView(tables)) == [p for d in docs for p in d.passages]
    for row, sentence in enumerate(SentenceView(tables)):
        assert tables.texts[sentence.source][sentence.start : sentence.end] == sentence.text
        assert tables.sentence_text(row) == sentence.text
    assert list(tables.sentence_texts()) == [s.text for d in docs for s in d.sentences]


def test_selecting_and_joining_keeps_every_record(tmp_path: Path) -> None:
    docs = documents(tmp_path, sorted(DOCS))
    everything = Tables.from_documents(docs)
    kept = everything.keep_sources({"a.md", "notes/c.md"})
    assert kept.sources == ["a.md", "notes/c.md"] and set(kept.texts) == {"a.md", "notes/c.md"}
    assert list(SentenceView(kept)) == [s for d in docs if d.source != "b.txt" for s in d.sentences]
    joined = kept.extend(Tables.from_documents([d for d in docs if d.source == "b.txt"]))
    by_source = sorted(SentenceView(joined), key=lambda s: (s.source, s.start))
    assert by_source == sorted((s for d in docs for s in d.sentences), key=lambda s: (s.source, s.start))
    # Section titles are shared by number, not repeated.
    assert sorted(joined.sections) == sorted(set(joined.sections)) == ["Details", "Intro"]
    with pytest.raises(ValueError, match="share a source"):
        joined.extend(kept)


def test_passage_rows_group_sentences_in_reading_order(tmp_path: Path) -> None:
    tables = Tables.from_documents(documents(tmp_path, sorted(DOCS)))
    sentences = SentenceView(tables)
    for row, passage in enumerate(PassageView(tables)):
        inside = [sentences[int(r)] for r in tables.passage_sentence_rows(row)]
        assert inside and all(s.passage_id == passage.id for s in inside)
        assert [s.start for s in inside] == sorted(s.start for s in inside)
    assert sum(len(tables.passage_sentence_rows(row)) for row in range(len(tables.passages))) == len(sentences)


def test_save_and_load_round_trip_without_pickle(tmp_path: Path) -> None:
    tables = Tables.from_documents(documents(tmp_path, sorted(DOCS)))
    folder = tmp_path / "build"
    folder.mkdir()
    tables.save(folder)
    for name in ("passages.npy", "sentences.npy"):
        np.load(folder / name, allow_pickle=False)
    assert json.loads((folder / "sources.json").read_text(encoding="utf-8"))["sources"] == sorted(DOCS)
    loaded = Tables.load(folder, tables.texts)
    assert SentenceView(loaded) == SentenceView(tables) and PassageView(loaded) == PassageView(tables)
    with pytest.raises(KeyError, match="no text for"):
        Tables.load(folder, {})


def test_views_index_like_lists(tmp_path: Path) -> None:
    docs = documents(tmp_path, ["b.txt"])
    view = SentenceView(Tables.from_documents(docs))
    assert len(view) == 2 and view[-1] == docs[0].sentences[-1] and view[0:1] == [docs[0].sentences[0]]
    with pytest.raises(IndexError):
        view[2]
    assert not SentenceView(Tables.empty())


def test_keys_find_their_rows(tmp_path: Path) -> None:
    tables = Tables.from_documents(documents(tmp_path, sorted(DOCS)))
    keys = record_key(tables.sentences["id"])
    assert keys.tolist() == [vector_key(s.id) for s in SentenceView(tables)]
    lookup = KeyRows(keys)
    np.testing.assert_array_equal(lookup.rows(keys[::-1]), np.arange(len(keys))[::-1])
    assert lookup.rows(np.asarray([keys.max() + 1, -5])).tolist() == [-1, -1]
    assert KeyRows(np.zeros(0, dtype=np.int64)).rows(np.asarray([3])).tolist() == [-1]
