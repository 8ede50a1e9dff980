"""Uploads into the seeds folder: hostile names, sizes and extensions refused, nothing written outside it."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from qa.errors import UploadRefused
from qa.ingest import seeds as ingest
from qa.web.uploads import check_name, save_upload, save_uploads


def _snapshot(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture
def upload_area(tmp_path: Path) -> tuple[Path, Path]:
    """A seeds folder inside tmp_path, a file to upload beside it, and a sibling that must never change."""
    seeds = tmp_path / "area" / "seeds"
    seeds.mkdir(parents=True)
    (seeds / "existing.txt").write_text("Already here.\n", encoding="utf-8")
    (tmp_path / "area" / "evil.txt").write_text("untouched\n", encoding="utf-8")
    uploaded = tmp_path / "incoming"
    uploaded.write_text("An uploaded document about owls.\n", encoding="utf-8")
    return seeds, uploaded


def test_upload_saves_a_supported_file(upload_area: tuple[Path, Path]) -> None:
    seeds, uploaded = upload_area
    saved = save_upload(seeds, "Owls (notes).txt", uploaded)
    assert saved == seeds / "Owls (notes).txt" and saved.read_bytes() == uploaded.read_bytes()
    assert sorted(p.name for p in seeds.iterdir()) == ["Owls (notes).txt", "existing.txt"]  # no temp file left


@pytest.mark.parametrize(
    ("name", "says"),
    [
        ("../evil.txt", "path"),
        ("..\\evil.txt", "path"),
        ("/etc/evil.txt", "path"),
        ("sub/evil.txt", "path"),
        ("..", "path"),
        (".hidden.txt", "not a safe file name"),
        ("evil.txt\n", "not a safe file name"),
        ("run.sh", "not a supported type"),
        ("notes.txt.exe", "not a supported type"),
        ("noextension", "not a supported type"),
        ("existing.txt", "already exists"),
    ],
)
def test_hostile_upload_names_are_refused(upload_area: tuple[Path, Path], name: str, says: str) -> None:
    seeds, uploaded = upload_area
    area = seeds.parent.parent
    before = _snapshot(area)
    with pytest.raises(UploadRefused, match=re.escape(says)):
        save_upload(seeds, name, uploaded)
    assert _snapshot(area) == before


def test_oversized_upload_is_refused(upload_area: tuple[Path, Path]) -> None:
    seeds, uploaded = upload_area
    before = _snapshot(seeds.parent.parent)
    with pytest.raises(UploadRefused, match="the limit is 10 bytes"):
        save_upload(seeds, "big.txt", uploaded, max_bytes=10)
    assert _snapshot(seeds.parent.parent) == before


def test_allowed_extensions_follow_ingest(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("report.pdf", "page.html", "page.htm", "memo.docx", "notes.md"):
        assert check_name(name) == name
    with pytest.raises(UploadRefused):
        check_name("report.odt")
    monkeypatch.setattr(ingest, "SUPPORTED_SUFFIXES", (*ingest.SUPPORTED_SUFFIXES, ".odt"))
    assert check_name("report.odt") == "report.odt"


def test_save_uploads_reports_each_file(upload_area: tuple[Path, Path]) -> None:
    seeds, uploaded = upload_area
    outcomes = save_uploads(seeds, [("a.md", uploaded), ("../b.md", uploaded), ("c.exe", uploaded)])
    assert [(o.name, o.saved) for o in outcomes] == [("a.md", True), ("../b.md", False), ("c.exe", False)]
    assert all(o.reason for o in outcomes[1:])
