"""The manifest record: its JSON layout is the one on disk; an index of an older schema gets the command to rebuild."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from conftest import REPO

from qa.embed.encoder import Encoder
from qa.errors import IndexCorruptError
from qa.indexing import build_index
from qa.quotes import answer_question
from qa.reader.index import load_index
from qa.storage.layout import MANIFEST, live_build, pointer_text
from qa.storage.manifest import SCHEMA_VERSION, Manifest

# An index built by the code before records became columns (schema 2), from the
# one document beside it. Small and reviewed: six sentences.
OLD_INDEX = REPO / "tests" / "fixtures" / "index-schema2"


@pytest.fixture
def old_index(tmp_path: Path) -> Path:
    shutil.copytree(OLD_INDEX, tmp_path / "old")
    return tmp_path / "old"


@pytest.fixture
def new_index(old_index: Path, encoder: Encoder) -> Path:
    build_index(old_index / "seeds", old_index / "new-index", encoder)
    return old_index / "new-index"


def test_an_index_of_the_schema_before_is_refused_with_the_command_that_rebuilds_it(
    old_index: Path, encoder: Encoder
) -> None:
    assert SCHEMA_VERSION == 4
    with pytest.raises(IndexCorruptError, match=r"has schema 2, this version reads 4; run `python -m qa build --full`"):
        load_index(old_index / "index", encoder)


def test_a_build_over_an_old_index_rebuilds_it_in_full_and_answers(old_index: Path, encoder: Encoder) -> None:
    index = build_index(old_index / "seeds", old_index / "index", encoder)
    assert index.report is not None and index.report.full and index.report.embedded_sentences == 6
    index = load_index(old_index / "index", encoder)
    assert index.manifest.schema_version == SCHEMA_VERSION
    answer = answer_question(index, "When did the bridge open?")
    assert answer.answered and answer.quotes[0].text == "The bridge opened in 1932 after eight years of work."
    quote = answer.quotes[0]
    assert index.source_text(quote.source)[quote.start : quote.end] == quote.text
    assert index.stale(old_index / "seeds") == {"added": [], "changed": [], "removed": []}


def test_the_manifest_reads_back_as_the_json_on_disk(new_index: Path, encoder: Encoder) -> None:
    on_disk = json.loads((live_build(new_index) / MANIFEST).read_text(encoding="utf-8"))
    manifest = load_index(new_index, encoder).manifest
    assert manifest.to_dict() == on_disk
    assert list(manifest.to_dict()) == list(on_disk)  # the same key order, so the bytes are the same
    assert Manifest.from_dict(on_disk) == manifest
    assert on_disk["stores"] == {
        "sentences": {"kind": "exact", "trained_on": 0},
        "passages": {"kind": "exact", "trained_on": 0},
    }


def _rewrite_manifest(index_dir: Path, change: dict[str, object]) -> None:
    build = live_build(index_dir)
    data = json.loads((build / MANIFEST).read_text(encoding="utf-8")) | change
    raw = (json.dumps(data, indent=2) + "\n").encode("utf-8")
    (build / MANIFEST).write_bytes(raw)
    (index_dir / "CURRENT").write_text(pointer_text(build.name, raw), encoding="utf-8")


def test_another_schema_is_refused_with_the_command_that_fixes_it(new_index: Path, encoder: Encoder) -> None:
    _rewrite_manifest(new_index, {"schema_version": 99})
    with pytest.raises(
        IndexCorruptError, match=r"has schema 99, this version reads 4; run `python -m qa build --full`"
    ):
        load_index(new_index, encoder)


def test_a_manifest_missing_a_field_is_refused(new_index: Path, encoder: Encoder) -> None:
    _rewrite_manifest(new_index, {"counts": {"sources": 1}})
    with pytest.raises(IndexCorruptError, match=r"is incomplete.*run `python -m qa build --full`"):
        load_index(new_index, encoder)
