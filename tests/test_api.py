"""The public API in qa/__init__.py: wrappers reading QA_* settings and the default index."""

from __future__ import annotations

from pathlib import Path

import pytest

import qa
from qa.embed.encoder import Encoder


@pytest.fixture
def configured(seeds_copy: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, Path]:
    index_dir = tmp_path / "index"
    monkeypatch.setenv("QA_SEEDS", str(seeds_copy))
    monkeypatch.setenv("QA_INDEX", str(index_dir))
    qa.reload_settings()
    return seeds_copy, index_dir


def test_public_build_and_load_use_the_shared_encoder(
    seeds_copy: Path, tmp_path: Path, encoder: Encoder
) -> None:
    built = qa.build_index(seeds_copy, tmp_path / "index")
    loaded = qa.load_index(tmp_path / "index")
    assert built.encoder is encoder and loaded.encoder is encoder
    assert loaded.sentences == built.sentences


def test_default_index_is_built_once_then_reused(configured: tuple[Path, Path]) -> None:
    _seeds_dir, index_dir = configured
    assert not index_dir.exists()
    hits = qa.retrieve("Who is Paul Knierim?", k=2)
    assert len(hits) == 2 and (index_dir / "CURRENT").is_file()
    first = qa.default_index()
    assert qa.default_index() is first
    assert qa.answer("Who is Paul Knierim?").question == "Who is Paul Knierim?"


def test_default_index_reloads_after_a_rebuild(configured: tuple[Path, Path]) -> None:
    seeds_dir, index_dir = configured
    first = qa.default_index()
    (seeds_dir / "extra.txt").write_text("The harbour pilot boards ships at dawn.\n", encoding="utf-8")
    qa.build_index(seeds_dir, index_dir)
    second = qa.default_index()
    assert second is not first and second.path != first.path
    assert "extra.txt" in second.sources
    assert qa.retrieve("When does the harbour pilot board ships?", k=1)[0].source == "extra.txt"


def test_default_index_without_index_or_seeds_says_how_to_build(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("QA_SEEDS", str(tmp_path / "no-seeds"))
    monkeypatch.setenv("QA_INDEX", str(tmp_path / "no-index"))
    qa.reload_settings()
    with pytest.raises(qa.IndexMissingError, match="python -m qa build"):
        qa.retrieve("Who is Paul Knierim?")


def test_min_confidence_comes_from_the_environment(
    seed_index: qa.Index, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("QA_MIN_CONFIDENCE", "0")
    qa.reload_settings()
    assert qa.answer("What is the boiling point of water?", index=seed_index).answered is True
    monkeypatch.setenv("QA_MIN_CONFIDENCE", "1.5")
    qa.reload_settings()
    assert qa.answer("Who is Paul Knierim?", index=seed_index).answered is False
