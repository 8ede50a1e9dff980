"""Ingest: which seed files are read, and why the others are skipped."""

from __future__ import annotations

import hashlib
import logging
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from samples import encrypted_pdf, image_only_pdf

import qa.ingest.seeds
from qa.errors import SeedsError
from qa.ingest.seeds import SkippedFile, read_sources, source_hashes
from qa.split import split_document


@pytest.mark.parametrize(
    ("name", "content", "reason"),
    [
        ("latin1.txt", "caf\xe9 cr\xe8me".encode("latin-1"), "is not valid UTF-8"),
        ("image.txt", b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", "looks binary"),
        ("empty.txt", b"", "is empty"),
        ("zero.pdf", b"", "is empty"),
        ("zero.docx", b"", "is empty"),
        ("zero.html", b"", "is empty"),
        ("blank.md", b" \n\t\r\n\xc2\xa0\n", "is empty"),
        ("scan.pdf", image_only_pdf(), "no extractable text, not indexed"),
        ("locked.pdf", encrypted_pdf("user secret"), "encrypted, not indexed"),
        ("broken.pdf", b"%PDF-1.7\nnot really a pdf", "cannot be read as PDF"),
        ("words.pdf", b"Plain words in a file named like a PDF.\n", "is not a PDF (no %PDF- header)"),
        ("broken.docx", b"PK\x03\x04 not a zip archive", "cannot be read as DOCX"),
        ("empty.html", b"<html><body><nav><a href='/'>Home</a></nav></body></html>", "no main text found"),
        ("binary.htm", b"\x00\x01\x02\xff", "cannot be parsed as HTML"),
    ],
)
def test_bad_seed_is_skipped_with_a_reason_and_good_one_still_read(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, name: str, content: bytes, reason: str
) -> None:
    (tmp_path / "good.txt").write_text("A good sentence.\n", encoding="utf-8")
    (tmp_path / name).write_bytes(content)
    with caplog.at_level(logging.WARNING, logger="qa.ingest"):
        readable, skipped = read_sources(tmp_path)
    assert [f.source for f in readable] == ["good.txt"]
    assert len(skipped) == 1 and isinstance(skipped[0], SkippedFile)
    assert skipped[0].source == name
    assert reason in skipped[0].reason
    assert any(name in message and reason in message for message in caplog.messages)


def test_file_over_the_size_limit_is_skipped_unread(tmp_path: Path) -> None:
    (tmp_path / "small.txt").write_text("Small words.\n", encoding="utf-8")
    (tmp_path / "large.md").write_bytes(b"Large words here.\n" * 100_000)  # 1,800,000 bytes, 1.7 MiB
    readable, skipped = read_sources(tmp_path, max_file_mb=1)
    assert [f.source for f in readable] == ["small.txt"]
    # No sha256: the bytes were never read.
    assert skipped == [SkippedFile("large.md", "is 1.7 MB, over the 1 MB limit (set QA_MAX_FILE_MB to raise it)")]
    assert source_hashes(tmp_path, max_file_mb=1).keys() == {"small.txt"}
    assert source_hashes(tmp_path, max_file_mb=2).keys() == {"small.txt", "large.md"}
    assert [f.source for f in read_sources(tmp_path, max_file_mb=2)[0]] == ["large.md", "small.txt"]


def test_size_limit_is_inclusive_to_the_byte(tmp_path: Path) -> None:
    limit_mb = 0.001  # 1,048.576 bytes
    (tmp_path / "at.txt").write_bytes(b"w" * 1048)
    (tmp_path / "over.txt").write_bytes(b"w" * 1049)
    readable, skipped = read_sources(tmp_path, max_file_mb=limit_mb)
    assert [f.source for f in readable] == ["at.txt"]
    assert [(f.source, f.reason) for f in skipped] == [
        ("over.txt", "is 1,049 bytes, over the 0.001 MB limit (set QA_MAX_FILE_MB to raise it)")
    ]


def test_files_with_the_same_bytes_are_read_once_under_the_first_path(tmp_path: Path) -> None:
    content = b"The same report, filed twice.\n"
    for name in ("b/copy.txt", "a/first.txt", "c/copy.md", "zero-1.txt", "zero-2.txt"):
        (tmp_path / name).parent.mkdir(exist_ok=True)
        (tmp_path / name).write_bytes(b"" if name.startswith("zero") else content)
    (tmp_path / "other.txt").write_bytes(b"A different report.\n")
    readable, skipped = read_sources(tmp_path)
    assert [f.source for f in readable] == ["a/first.txt", "other.txt"]
    sha256 = hashlib.sha256(content).hexdigest()
    assert skipped == [
        SkippedFile("b/copy.txt", "same content as a/first.txt (indexed once, cited as that file)", sha256, "a/first.txt"),
        SkippedFile("c/copy.md", "same content as a/first.txt (indexed once, cited as that file)", sha256, "a/first.txt"),
        # Files skipped for what they hold are not duplicates of each other.
        SkippedFile("zero-1.txt", "is empty", hashlib.sha256(b"").hexdigest()),
        SkippedFile("zero-2.txt", "is empty", hashlib.sha256(b"").hexdigest()),
    ]


def test_unsupported_suffixes_are_not_read(tmp_path: Path) -> None:
    for name in ("slides.pptx", "data.json", "notes.TXT", "page.md", "README"):
        (tmp_path / name).write_text(f"Some words in {name}.\n", encoding="utf-8")
    readable, skipped = read_sources(tmp_path)
    assert [f.source for f in readable] == ["notes.TXT", "page.md"]
    assert skipped == []


def test_symlink_leading_outside_the_seeds_folder_is_not_followed(tmp_path: Path) -> None:
    seeds_dir = tmp_path / "seeds"
    seeds_dir.mkdir()
    (tmp_path / "secret.txt").write_text("Outside words.\n", encoding="utf-8")
    (seeds_dir / "inside.txt").write_text("Inside words.\n", encoding="utf-8")
    (tmp_path / "private").mkdir()
    (tmp_path / "private" / "diary.md").write_text("Private words.\n", encoding="utf-8")
    os.symlink(tmp_path / "secret.txt", seeds_dir / "leak.txt")
    os.symlink(tmp_path / "private", seeds_dir / "linked-folder", target_is_directory=True)
    # A link that stays inside is read like a copy: once, under the path that sorts first.
    os.symlink(seeds_dir / "inside.txt", seeds_dir / "alias.txt")
    readable, skipped = read_sources(seeds_dir)
    assert [(f.source, f.text) for f in readable] == [("alias.txt", "Inside words.\n")]
    assert [(f.source, f.reason, f.duplicate_of) for f in skipped] == [
        ("inside.txt", "same content as alias.txt (indexed once, cited as that file)", "alias.txt"),
        ("leak.txt", "links outside the seeds folder (not followed)", None),
        ("linked-folder", "links outside the seeds folder (not followed)", None),
    ]
    assert skipped[1].sha256 is None and skipped[2].sha256 is None


def test_link_to_a_folder_inside_seeds_is_reported_and_not_followed(tmp_path: Path) -> None:
    (tmp_path / "hearings" / "2018").mkdir(parents=True)
    (tmp_path / "hearings" / "2018" / "oct.txt").write_text("Deep words here.\n", encoding="utf-8")
    os.symlink("../..", tmp_path / "hearings" / "2018" / "loop", target_is_directory=True)  # to the seeds folder
    os.symlink("hearings", tmp_path / "shortcut", target_is_directory=True)
    readable, skipped = read_sources(tmp_path)
    assert [f.source for f in readable] == ["hearings/2018/oct.txt"]
    assert [f.source for f in skipped] == ["hearings/2018/loop", "shortcut"]
    assert all(f.reason.startswith("links to a folder inside the seeds folder (not followed") for f in skipped)


@pytest.fixture
def deepest_folder(tmp_path: Path) -> Iterator[Path]:
    """tmp_path/d/d/.../d, 1,200 folders down; removed again bottom-up, since pytest's
    own clean-up (shutil.rmtree) recurses and would fail on it in a later session."""
    chain = [tmp_path]
    for _ in range(1200):
        chain.append(chain[-1] / "d")
        chain[-1].mkdir()
    yield chain[-1]
    for folder in reversed(chain[1:]):
        for child in folder.iterdir():
            if not child.is_dir():
                child.unlink()
        folder.rmdir()


def test_files_deeper_than_the_recursion_limit_are_found(tmp_path: Path, deepest_folder: Path) -> None:
    # Path.rglob on Python 3.11 raises RecursionError about 1,000 folders down.
    (deepest_folder / "deep.txt").write_text("Very deep words.\n", encoding="utf-8")
    readable, skipped = read_sources(tmp_path)
    assert [f.source for f in readable] == ["d/" * 1200 + "deep.txt"] and skipped == []


def test_folder_that_cannot_be_listed_is_logged_and_the_rest_read(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Permissions do not stop root, who may run the tests, so the refusal is simulated.
    (tmp_path / "locked").mkdir()
    (tmp_path / "locked" / "hidden.txt").write_text("Hidden words.\n", encoding="utf-8")
    (tmp_path / "open.txt").write_text("Open words.\n", encoding="utf-8")
    real_scandir = os.scandir

    def refuse_locked(path: Any) -> Any:
        if Path(path).name == "locked":
            raise PermissionError(13, "Permission denied", str(path))
        return real_scandir(path)

    monkeypatch.setattr(qa.ingest.seeds.os, "scandir", refuse_locked)
    with caplog.at_level(logging.WARNING, logger="qa.ingest"):
        readable, _ = read_sources(tmp_path)
    assert [f.source for f in readable] == ["open.txt"]
    assert any("cannot list folder" in m and "locked" in m and "Permission denied" in m for m in caplog.messages)


def test_nested_folders_use_forward_slash_relative_sources(tmp_path: Path) -> None:
    (tmp_path / "hearings" / "2018").mkdir(parents=True)
    (tmp_path / "hearings" / "2018" / "oct.txt").write_text("Deep words here.\n", encoding="utf-8")
    (tmp_path / "top.md").write_text("Top words here.\n", encoding="utf-8")
    readable, _ = read_sources(tmp_path)
    assert [f.source for f in readable] == ["hearings/2018/oct.txt", "top.md"]
    document = split_document(readable[0])
    assert document.sentences[0].source == "hearings/2018/oct.txt"
    for record in (*document.passages, *document.sentences):
        assert document.text[record.start : record.end] == record.text


def test_missing_seeds_folder_raises_seeds_error(tmp_path: Path) -> None:
    with pytest.raises(SeedsError, match="does not exist"):
        read_sources(tmp_path / "nowhere")
