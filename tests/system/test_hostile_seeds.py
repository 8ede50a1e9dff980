"""Seed folders with bad content: every bad file is reported with its reason, the good ones still answer."""

from __future__ import annotations

import hashlib
import random
from pathlib import Path

import pytest

import qa
from qa.cli import main
from qa.embed.encoder import Encoder
from qa.indexing import build_index
from qa.reader.index import Index, load_index

Captured = pytest.CaptureFixture[str]

# Each good file answers one question; the top quote must come from it and hold the words.
GOOD = {
    "notes.txt": "The ferry to Castle Island leaves the north pier at seven every morning.\n",
    "guide/walks.md": "# Coastal walks\n\nThe cliff path from Harlow to Penmoor takes about three hours on foot.\n",
}
QUESTIONS = [
    ("When does the ferry to Castle Island leave?", "notes.txt", "seven every morning"),
    ("How long does the cliff path from Harlow to Penmoor take?", "guide/walks.md", "about three hours"),
]
# Bad files and what the reason they are skipped for must say.
BAD = {
    "noise.txt": (random.Random(7).randbytes(4096), "looks binary (contains NUL bytes)"),
    "latin1.txt": ("Caf\xe9 au lait co\xfbte deux euros.\n".encode("latin-1"), "is not valid UTF-8 (byte 3)"),
    "zero.txt": (b"", "is empty"),
    "zero.md": (b"", "is empty"),
    "zero.pdf": (b"", "is empty"),
    "zero.docx": (b"", "is empty"),
    "zero.html": (b"", "is empty"),
    "words.pdf": (b"Plain words in a file named like a PDF.\n", "is not a PDF (no %PDF- header), not indexed"),
}


def write_seeds(seeds_dir: Path, files: dict[str, bytes | str]) -> Path:
    for name, content in files.items():
        path = seeds_dir / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content.encode("utf-8") if isinstance(content, str) else content)
    return seeds_dir


@pytest.fixture
def hostile_seeds(tmp_path: Path) -> Path:
    """The good files mixed with every bad one."""
    return write_seeds(tmp_path / "seeds", {**GOOD, **{name: content for name, (content, _) in BAD.items()}})


def assert_every_record_slices_its_source(index: Index) -> None:
    for record in (*index.sentences, *index.passages):
        assert index.source_text(record.source)[record.start : record.end] == record.text, record


def assert_good_files_answer(index: Index) -> None:
    for question, source, words in QUESTIONS:
        result = qa.answer(question, index=index)
        assert result.answered, result
        assert result.quotes[0].source == source and words in result.quotes[0].text
        for quote in result.quotes:
            assert index.source_text(quote.source)[quote.start : quote.end] == quote.text


# --- binary, invalid UTF-8, empty and fake files -------------------------------------------


def test_bad_files_are_skipped_with_their_reasons_and_good_ones_answer(
    hostile_seeds: Path, tmp_path: Path, encoder: Encoder
) -> None:
    index = build_index(hostile_seeds, tmp_path / "index", encoder)
    assert index.report is not None
    assert sorted(index.sources) == sorted(GOOD)
    assert {skipped.source: skipped.reason for skipped in index.report.skipped} == {
        name: reason for name, (_, reason) in BAD.items()
    }
    assert {name: entry.reason for name, entry in index.manifest.skipped.items()} == {
        name: reason for name, (_, reason) in BAD.items()
    }
    assert_every_record_slices_its_source(index)
    assert_good_files_answer(index)
    # Skipped files are not news to the next staleness check while their bytes stay the same.
    assert index.stale(hostile_seeds) == {"added": [], "changed": [], "removed": []}


def test_cli_build_lists_each_bad_file_on_stderr_and_answers_from_the_good_ones(
    capsys: Captured, hostile_seeds: Path, tmp_path: Path, encoder: Encoder, monkeypatch: pytest.MonkeyPatch
) -> None:
    index_dir = str(tmp_path / "index")
    code = main(["build", "--seeds", str(hostile_seeds), "--index", index_dir])
    out, err = capsys.readouterr()
    assert code == 0, err
    assert f"{len(GOOD)} added, 0 changed, 0 removed, 0 unchanged, {len(BAD)} skipped" in out
    assert "Traceback" not in err
    for name, (_, reason) in BAD.items():
        assert f"skipped {name}: {reason}\n" in err
    for name in GOOD:
        assert name not in err

    monkeypatch.setenv("QA_MIN_CONFIDENCE", "0")  # this checks what is quoted, not the calibration
    qa.reload_settings()
    for question, source, words in QUESTIONS:
        code = main(["ask", question, "--index", index_dir])
        out, err = capsys.readouterr()
        assert code == 0, err
        first_quote, first_citation = out.splitlines()[:2]
        assert words in first_quote and first_citation.strip().startswith(source)

    assert main(["info", "--index", index_dir, "--seeds", str(hostile_seeds)]) == 0
    out = capsys.readouterr().out
    for name, (_, reason) in BAD.items():
        assert f"skipped:   {name}: {reason}\n" in out
    assert "stale:     no" in out


# --- deep folders and links --------------------------------------------------------------


def test_file_sixty_folders_deep_is_indexed_under_its_forward_slash_path(tmp_path: Path, encoder: Encoder) -> None:
    deep = "/".join(f"level-{number:02d}" for number in range(60)) + "/harbour.txt"
    seeds_dir = write_seeds(tmp_path / "seeds", {**GOOD, deep: "The harbour master rings the bell at noon.\n"})
    index = build_index(seeds_dir, tmp_path / "index", encoder)
    assert sorted(index.sources) == sorted([*GOOD, deep])
    assert {s.source for s in index.sentences if "harbour master" in s.text} == {deep}
    [hit] = qa.retrieve("When does the harbour master ring the bell?", k=1, index=index)
    assert hit.source == deep and index.source_text(deep)[hit.start : hit.end] == hit.text
    assert_every_record_slices_its_source(index)
    assert index.stale(seeds_dir) == {"added": [], "changed": [], "removed": []}


def test_link_looping_back_to_an_ancestor_neither_hangs_nor_duplicates(tmp_path: Path, encoder: Encoder) -> None:
    seeds_dir = write_seeds(tmp_path / "seeds", GOOD)
    (seeds_dir / "guide" / "loop").symlink_to("..", target_is_directory=True)  # guide/loop/guide/loop/...
    index = build_index(seeds_dir, tmp_path / "index", encoder)
    assert index.report is not None
    assert sorted(index.sources) == sorted(GOOD)
    assert [(s.source, s.reason.split(" (")[0]) for s in index.report.skipped] == [
        ("guide/loop", "links to a folder inside the seeds folder")
    ]
    texts = [(s.source, s.text) for s in index.sentences]
    assert len(texts) == len(set(texts))
    assert index.stale(seeds_dir) == {"added": [], "changed": [], "removed": []}
    again = build_index(seeds_dir, tmp_path / "index", encoder)
    assert again.report is not None and again.report.unchanged == sorted(GOOD)


def test_links_leading_outside_the_seeds_folder_are_not_followed(tmp_path: Path, encoder: Encoder) -> None:
    seeds_dir = write_seeds(tmp_path / "seeds", GOOD)
    outside = write_seeds(tmp_path / "private", {"secret.txt": "The vault code is 4471.\n", "more/diary.md": "Dear diary.\n"})
    (seeds_dir / "leak.txt").symlink_to(outside / "secret.txt")
    (seeds_dir / "guide" / "private").symlink_to(outside, target_is_directory=True)
    index = build_index(seeds_dir, tmp_path / "index", encoder)
    assert sorted(index.sources) == sorted(GOOD)
    reason = "links outside the seeds folder (not followed)"
    assert {source: entry.reason for source, entry in index.manifest.skipped.items()} == {
        "leak.txt": reason,
        "guide/private": reason,
    }
    assert not any("vault" in text or "diary" in text for text in index.texts.values())
    assert index.stale(seeds_dir) == {"added": [], "changed": [], "removed": []}


# --- files too large to embed --------------------------------------------------------------

MEBIBYTE = 1024 * 1024


def write_large_text(path: Path, megabytes: float) -> Path:
    """A text file of real sentences, `megabytes` MiB long, written in 1 MiB blocks."""
    line = b"The tide tables for the outer harbour are printed every week. "
    block = (line * (MEBIBYTE // len(line) + 1))[:MEBIBYTE]
    with path.open("wb") as handle:
        for _ in range(int(megabytes)):
            handle.write(block)
        handle.write(block[: round(megabytes % 1 * MEBIBYTE)])
    return path


@pytest.fixture
def files_read(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Names of the files whose bytes ingest reads from now on (it reads with Path.read_bytes)."""
    names: list[str] = []
    real_read_bytes = Path.read_bytes

    def recording_read_bytes(path: Path) -> bytes:
        names.append(path.name)
        return real_read_bytes(path)

    monkeypatch.setattr(Path, "read_bytes", recording_read_bytes)
    return names


def test_fifty_megabyte_file_is_skipped_unread_and_stays_skipped(
    capsys: Captured, tmp_path: Path, encoder: Encoder, files_read: list[str]
) -> None:
    seeds_dir = write_seeds(tmp_path / "seeds", GOOD)
    assert write_large_text(seeds_dir / "tides.txt", 50).stat().st_size == 50 * MEBIBYTE
    index_dir = str(tmp_path / "index")
    # Embedding 50 MB would take hours: the build returning at all shows the file was skipped.
    code = main(["build", "--seeds", str(seeds_dir), "--index", index_dir])
    out, err = capsys.readouterr()
    assert code == 0, err
    assert "skipped tides.txt: is 50.0 MB, over the 25 MB limit (set QA_MAX_FILE_MB to raise it)\n" in err
    assert f"{len(GOOD)} added, 0 changed, 0 removed, 0 unchanged, 1 skipped" in out
    index = load_index(Path(index_dir), encoder)
    assert sorted(index.sources) == sorted(GOOD)
    assert index.manifest.skipped["tides.txt"].sha256 is None  # never read, so never hashed
    assert not any("tide tables" in text for text in index.texts.values())

    # Neither the staleness check nor the next build reads it, and neither calls it added.
    assert index.stale(seeds_dir) == {"added": [], "changed": [], "removed": []}
    assert main(["build", "--seeds", str(seeds_dir), "--index", index_dir]) == 0
    assert f"0 added, 0 changed, 0 removed, {len(GOOD)} unchanged, 1 skipped" in capsys.readouterr().out
    assert main(["info", "--index", index_dir, "--seeds", str(seeds_dir)]) == 0
    assert "stale:     no" in capsys.readouterr().out
    assert "tides.txt" not in files_read and {"notes.txt", "walks.md"} <= set(files_read)
    (seeds_dir / "tides.txt").unlink()  # pytest keeps recent temporary folders; 50 MB need not stay


def test_size_limit_is_set_by_qa_max_file_mb(
    capsys: Captured, tmp_path: Path, encoder: Encoder, monkeypatch: pytest.MonkeyPatch
) -> None:
    seeds_dir = write_seeds(tmp_path / "seeds", GOOD)
    write_large_text(seeds_dir / "tides.txt", 1.5)
    index_dir = str(tmp_path / "index")
    monkeypatch.setenv("QA_MAX_FILE_MB", "1")
    assert main(["build", "--seeds", str(seeds_dir), "--index", index_dir]) == 0
    assert "skipped tides.txt: is 1.5 MB, over the 1 MB limit (set QA_MAX_FILE_MB to raise it)\n" in capsys.readouterr().err
    assert main(["info", "--index", index_dir, "--seeds", str(seeds_dir)]) == 0
    assert "stale:     no" in capsys.readouterr().out

    # Under a higher limit the next build would index it, and `qa info` says so.
    monkeypatch.setenv("QA_MAX_FILE_MB", "2")
    assert main(["info", "--index", index_dir, "--seeds", str(seeds_dir)]) == 0
    assert "stale:     yes" in (out := capsys.readouterr().out) and "added: tides.txt" in out
    # The index remembers the limit it was built with, and judges staleness by it unless told otherwise.
    index = load_index(Path(index_dir), encoder)
    assert index.manifest.max_file_mb == 1
    assert index.stale(seeds_dir)["added"] == []
    assert index.stale(seeds_dir, max_file_mb=2)["added"] == ["tides.txt"]

    monkeypatch.setenv("QA_MAX_FILE_MB", "0")
    assert main(["build", "--seeds", str(seeds_dir), "--index", index_dir]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: QA_MAX_FILE_MB='0' is not a number of megabytes above 0") and "Traceback" not in err


# --- the same file under several names ------------------------------------------------------

REPORT = "The lifeboat crew trains on the slipway every Tuesday evening.\n"
COPIES = {"a/first.txt": REPORT, "b/copy.txt": REPORT, "c/copy.md": REPORT}


def lifeboat_sources(index: Index) -> list[str]:
    """The sources of the sentences holding the report's words: one each time, never a copy's."""
    return [sentence.source for sentence in index.sentences if "lifeboat" in sentence.text]


def test_duplicate_files_are_indexed_once_under_the_first_path(
    capsys: Captured, tmp_path: Path, encoder: Encoder
) -> None:
    seeds_dir = write_seeds(tmp_path / "seeds", {**GOOD, **COPIES})
    index_dir = tmp_path / "index"
    code = main(["build", "--seeds", str(seeds_dir), "--index", str(index_dir)])
    out, err = capsys.readouterr()
    assert code == 0, err
    reason = "same content as a/first.txt (indexed once, cited as that file)"
    assert f"skipped b/copy.txt: {reason}\n" in err and f"skipped c/copy.md: {reason}\n" in err
    assert f"{len(GOOD) + 1} added, 0 changed, 0 removed, 0 unchanged, 2 skipped" in out

    index = load_index(index_dir, encoder)
    assert sorted(index.sources) == sorted([*GOOD, "a/first.txt"])
    sha256 = hashlib.sha256(REPORT.encode("utf-8")).hexdigest()
    assert index.manifest.to_dict()["skipped"] == {
        name: {"sha256": sha256, "reason": reason, "duplicate_of": "a/first.txt"} for name in ("b/copy.txt", "c/copy.md")
    }
    assert lifeboat_sources(index) == ["a/first.txt"]
    result = qa.answer("When does the lifeboat crew train?", index=index)
    assert result.answered and result.quotes[0].source == "a/first.txt"
    assert_every_record_slices_its_source(index)
    assert index.stale(seeds_dir) == {"added": [], "changed": [], "removed": []}

    again = build_index(seeds_dir, index_dir, encoder)
    assert again.report is not None and again.report.embedded_sentences == 0
    assert again.report.unchanged == sorted([*GOOD, "a/first.txt"]) and again.report.added == []
    assert [skipped.source for skipped in again.report.skipped] == ["b/copy.txt", "c/copy.md"]


def test_when_the_first_copy_is_removed_the_next_one_is_indexed(tmp_path: Path, encoder: Encoder) -> None:
    seeds_dir = write_seeds(tmp_path / "seeds", {**GOOD, **COPIES})
    index_dir = tmp_path / "index"
    first = build_index(seeds_dir, index_dir, encoder)
    (seeds_dir / "a" / "first.txt").unlink()
    assert first.stale(seeds_dir) == {"added": ["b/copy.txt"], "changed": [], "removed": ["a/first.txt"]}

    index = build_index(seeds_dir, index_dir, encoder)
    report = index.report
    assert report is not None and not report.full
    assert (report.added, report.changed, report.removed) == (["b/copy.txt"], [], ["a/first.txt"])
    assert report.unchanged == sorted(GOOD) and report.embedded_sentences == 1
    assert [(s.source, s.duplicate_of) for s in report.skipped] == [("c/copy.md", "b/copy.txt")]
    assert lifeboat_sources(index) == ["b/copy.txt"]
    result = qa.answer("When does the lifeboat crew train?", index=index)
    assert result.answered and result.quotes[0].source == "b/copy.txt"
    assert_every_record_slices_its_source(index)
    assert index.stale(seeds_dir) == {"added": [], "changed": [], "removed": []}


def test_when_the_first_copy_changes_the_next_one_is_indexed(tmp_path: Path, encoder: Encoder) -> None:
    seeds_dir = write_seeds(tmp_path / "seeds", {**GOOD, **COPIES})
    index_dir = tmp_path / "index"
    first = build_index(seeds_dir, index_dir, encoder)
    write_seeds(seeds_dir, {"a/first.txt": "The lifeboat crew now trains on Thursdays.\n"})
    # c/copy.md still has an earlier twin, b/copy.txt, and stays skipped.
    assert first.stale(seeds_dir) == {"added": ["b/copy.txt"], "changed": ["a/first.txt"], "removed": []}

    index = build_index(seeds_dir, index_dir, encoder)
    assert index.report is not None
    assert (index.report.added, index.report.changed) == (["b/copy.txt"], ["a/first.txt"])
    assert [(s.source, s.duplicate_of) for s in index.report.skipped] == [("c/copy.md", "b/copy.txt")]
    assert sorted(lifeboat_sources(index)) == ["a/first.txt", "b/copy.txt"]
    assert index.stale(seeds_dir) == {"added": [], "changed": [], "removed": []}
