"""The manifest record: its JSON layout is the one on disk, and an index built before the records existed loads."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from conftest import REPO

from qa.embed.encoder import Encoder
from qa.errors import IndexCorruptError
from qa.quotes import answer_question
from qa.reader.index import load_index
from qa.storage.layout import MANIFEST, live_build, pointer_text
from qa.storage.manifest import SCHEMA_VERSION, Manifest

# An index built by the code before the package was laid out in stages (schema 2),
# from the one document beside it. Small and reviewed: six sentences.
OLD_INDEX = REPO / "tests" / "fixtures" / "index-schema2"


@pytest.fixture
def old_index(tmp_path: Path) -> Path:
    shutil.copytree(OLD_INDEX, tmp_path / "old")
    return tmp_path / "old"


def test_an_index_built_before_the_move_loads_and_answers(old_index: Path, encoder: Encoder) -> None:
    index = load_index(old_index / "index", encoder)
    assert index.manifest.schema_version == SCHEMA_VERSION == 2
    assert index.manifest.counts.sentences == len(index.sentences) == 6
    answer = answer_question(index, "When did the bridge open?")
    assert answer.answered and answer.quotes[0].text == "The bridge opened in 1932 after eight years of work."
    quote = answer.quotes[0]
    assert index.source_text(quote.source)[quote.start : quote.end] == quote.text
    assert index.stale(old_index / "seeds") == {"added": [], "changed": [], "removed": []}


def test_the_manifest_reads_back_as_the_json_on_disk(old_index: Path, encoder: Encoder) -> None:
    on_disk = json.loads((live_build(old_index / "index") / MANIFEST).read_text(encoding="utf-8"))
    manifest = load_index(old_index / "index", encoder).manifest
    assert manifest.to_dict() == on_disk
    assert list(manifest.to_dict()) == list(on_disk)  # the same key order, so the bytes are the same
    assert Manifest.from_dict(on_disk) == manifest


def _rewrite_manifest(index_dir: Path, change: dict[str, object]) -> None:
    build = live_build(index_dir)
    data = json.loads((build / MANIFEST).read_text(encoding="utf-8")) | change
    raw = (json.dumps(data, indent=2) + "\n").encode("utf-8")
    (build / MANIFEST).write_bytes(raw)
    (index_dir / "CURRENT").write_text(pointer_text(build.name, raw), encoding="utf-8")


def test_another_schema_is_refused_with_the_command_that_fixes_it(old_index: Path, encoder: Encoder) -> None:
    _rewrite_manifest(old_index / "index", {"schema_version": 99})
    with pytest.raises(IndexCorruptError, match=r"has schema 99, this version reads 2; run `python -m qa build --full`"):
        load_index(old_index / "index", encoder)


def test_a_manifest_missing_a_field_is_refused(old_index: Path, encoder: Encoder) -> None:
    _rewrite_manifest(old_index / "index", {"counts": {"sources": 1}})
    with pytest.raises(IndexCorruptError, match=r"is incomplete.*run `python -m qa build --full`"):
        load_index(old_index / "index", encoder)
