"""End to end: one folder mixing txt, md, pdf, html and docx builds, and each file answers with checkable citations."""

from __future__ import annotations

import re
import shutil
from pathlib import Path
from typing import Any

import pytest
from samples import HTML_BOILERPLATE, HTML_PAGE, PDF_PAGE_TWO, docx_bytes, encrypted_pdf, two_page_pdf

import qa
from qa.cli import main
from qa.embed.encoder import Encoder
from qa.ingest import seeds
from qa.reader.index import Index, load_index

FILES: dict[str, bytes] = {
    "notes.txt": b"The bakery on Elm Street sells sourdough loaves every Saturday morning.\n"
    b"Its owner learned to bake in Lyon before opening the shop in 2009.\n",
    "guide.md": b"# Bicycle repair\n\nTo fix a flat tyre, remove the inner tube and patch the puncture with "
    b"rubber cement.\n",
    "report.pdf": two_page_pdf(),
    "articles/tides.html": HTML_PAGE.encode("utf-8"),
    "memo.docx": docx_bytes(),
    "locked.pdf": encrypted_pdf("user secret"),
    "broken.docx": b"PK\x03\x04 not a zip archive",
}

# question, source, section, page, words the top quote must hold
QUESTIONS = [
    ("When does the bakery on Elm Street sell sourdough loaves?", "notes.txt", None, None, "Saturday morning"),
    ("How do you fix a flat bicycle tyre?", "guide.md", "Bicycle repair", None, "patch the puncture"),
    ("When did the lighthouse keeper retire?", "report.pdf", "Harbour traffic", 2, "retired in March"),
    ("When do spring tides happen?", "articles/tides.html", "Spring tides", None, "twice a month"),
    ("How much does the soup of the day cost in the canteen?", "memo.docx", "Menu", None, "two euros"),
]


@pytest.fixture(scope="module")
def mixed(encoder: Encoder, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Index]:
    """The mixed folder, built once for this module: (seeds folder, index folder, index)."""
    root = tmp_path_factory.mktemp("mixed")
    seeds_dir, index_dir = root / "seeds", root / "index"
    for name, content in FILES.items():
        (seeds_dir / name).parent.mkdir(parents=True, exist_ok=True)
        (seeds_dir / name).write_bytes(content)
    return seeds_dir, index_dir, qa.indexing.build_index(seeds_dir, index_dir, encoder)


def assert_slices(index: Index, records: list[qa.Hit] | list[qa.Quote]) -> None:
    for record in records:
        assert index.source_text(record.source)[record.start : record.end] == record.text, record


def test_mixed_folder_builds_and_reports_the_unreadable_files(mixed: tuple[Path, Path, Index]) -> None:
    _, _, index = mixed
    assert sorted(index.sources) == ["articles/tides.html", "guide.md", "memo.docx", "notes.txt", "report.pdf"]
    assert index.report is not None
    reasons = {skipped.source: skipped.reason for skipped in index.report.skipped}
    assert reasons.keys() == {"locked.pdf", "broken.docx"}
    assert "encrypted, not indexed" in reasons["locked.pdf"]
    assert "cannot be read as DOCX" in reasons["broken.docx"]
    assert {s: e.format for s, e in index.sources.items()} == {
        "articles/tides.html": "html", "guide.md": "md", "memo.docx": "docx", "notes.txt": "txt", "report.pdf": "pdf",
    }
    assert index.sources["articles/tides.html"].title == "Tide tables explained"
    assert index.sources["report.pdf"].pages == 2


@pytest.mark.parametrize(("question", "source", "section", "page", "words"), QUESTIONS)
def test_each_format_answers_with_a_verifiable_citation(
    mixed: tuple[Path, Path, Index], question: str, source: str, section: str | None, page: int | None, words: str
) -> None:
    _, _, index = mixed
    hits = qa.retrieve(question, k=5, index=index)
    result = qa.answer(question, index=index)
    assert result.answered, result
    top = result.quotes[0]
    assert (top.source, top.section, top.page) == (source, section, page)
    assert words in top.text
    assert (f"page {page}," in top.citation) == (page is not None)
    assert_slices(index, hits + result.quotes + result.related)
    for record in hits + result.quotes + result.related:
        assert not any(phrase in record.text for phrase in HTML_BOILERPLATE)


def test_source_text_survives_reload_and_incremental_build(
    mixed: tuple[Path, Path, Index], encoder: Encoder
) -> None:
    seeds_dir, index_dir, index = mixed
    loaded = load_index(index_dir, encoder)
    assert {s: loaded.source_text(s) for s in loaded.sources} == {s: index.source_text(s) for s in index.sources}
    assert index.source_text("notes.txt") == (seeds_dir / "notes.txt").read_text(encoding="utf-8")
    assert PDF_PAGE_TWO in index.source_text("report.pdf")
    with pytest.raises(KeyError, match=r"locked\.pdf"):
        index.source_text("locked.pdf")
    again = qa.indexing.build_index(seeds_dir, index_dir, encoder)
    assert again.report is not None and again.report.embedded_sentences == 0
    assert again.texts == index.texts
    assert_slices(again, qa.retrieve("When did the lighthouse keeper retire?", k=5, index=again))


def test_info_lists_documents_by_format(
    mixed: tuple[Path, Path, Index], capsys: pytest.CaptureFixture[str]
) -> None:
    seeds_dir, index_dir, _ = mixed
    assert main(["info", "--index", str(index_dir), "--seeds", str(seeds_dir)]) == 0
    out = capsys.readouterr().out
    assert re.search(r"^formats:\s+1 docx, 1 html, 1 md, 1 pdf, 1 txt$", out, re.MULTILINE)
    assert re.search(r'^  pdf\s+report\.pdf "Harbour report" \(2 pages\): 3 paragraphs', out, re.MULTILINE)
    assert re.search(r'^  html\s+articles/tides\.html "Tide tables explained": ', out, re.MULTILINE)
    assert re.search(r"^skipped:\s+locked\.pdf: encrypted, not indexed$", out, re.MULTILINE)
    # The files the build skipped are not news while their bytes stay the same.
    assert re.search(r"^stale:\s+no\b", out, re.MULTILINE)


def test_stale_compares_hashes_and_remembers_skipped_files(mixed: tuple[Path, Path, Index], tmp_path: Path) -> None:
    seeds_dir, _, index = mixed
    copy = tmp_path / "seeds"
    copy.mkdir()
    for name in ("notes.txt", "guide.md", "report.pdf", "memo.docx", "locked.pdf"):
        (copy / name).write_bytes((seeds_dir / name).read_bytes())
    (copy / "articles").mkdir()
    (copy / "articles/tides.html").write_bytes(b"<html><body><p>Changed.</p></body></html>")
    (copy / "broken.docx").write_bytes(b"PK\x03\x04 corrupt in another way")
    assert index.stale(copy) == {"added": ["broken.docx"], "changed": ["articles/tides.html"], "removed": []}


def test_an_incremental_build_does_not_extract_unchanged_files_again(
    mixed: tuple[Path, Path, Index], encoder: Encoder, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    seeds_dir, index_dir, index = mixed
    shutil.copytree(seeds_dir, tmp_path / "seeds")
    shutil.copytree(index_dir, tmp_path / "index")
    extracted: list[str] = []
    for suffix, (kind, extract) in list(seeds.EXTRACTORS.items()):

        def counting(data: bytes, kind: str = kind, extract: Any = extract) -> Any:
            extracted.append(kind)
            return extract(data)

        monkeypatch.setitem(seeds.EXTRACTORS, suffix, (kind, counting))
    (tmp_path / "seeds" / "more.txt").write_text("The ferry to Rook Island leaves at noon.\n", encoding="utf-8")
    added = qa.indexing.build_index(tmp_path / "seeds", tmp_path / "index", encoder)
    assert added.report is not None and added.report.added == ["more.txt"] and not added.report.full
    # Only the files the index does not hold were opened by a parser: the two it skipped.
    assert sorted(extracted) == ["docx", "pdf"]
    for name in ("report.pdf", "articles/tides.html", "memo.docx"):
        assert added.sources[name] == index.sources[name]  # format, title, pages and counts as extracted
    for question, source, section, page, words in QUESTIONS:
        [quote, *_] = qa.answer(question, index=added).quotes
        assert (quote.source, quote.section, quote.page) == (source, section, page) and words in quote.text
    assert_slices(added, [quote])

    extracted.clear()
    qa.indexing.build_index(tmp_path / "seeds", tmp_path / "index", encoder, full=True)
    assert sorted(extracted) == ["docx", "docx", "html", "pdf", "pdf"]
