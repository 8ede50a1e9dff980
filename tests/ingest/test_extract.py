"""Extraction of PDF, HTML and DOCX: the text laid out, headings, pages, titles and skip reasons."""

from __future__ import annotations

from io import BytesIO
from pathlib import Path

import docx
import pytest
from docx.enum.style import WD_STYLE_TYPE
from hypothesis import given, settings
from hypothesis import strategies as st
from pypdf.errors import DependencyError
from samples import (
    HTML_BOILERPLATE,
    HTML_PAGE,
    PDF_PAGE_ONE,
    PDF_PAGE_TWO,
    docx_bytes,
    encrypted_pdf,
    pdf_bytes,
    two_page_pdf,
)

import qa.ingest.extract
from qa.ingest.extract import (
    PageSpan,
    Unextractable,
    _TextBuilder,
    extract_docx,
    extract_html,
    extract_pdf,
    pdf_paragraphs,
)
from qa.ingest.seeds import SUPPORTED_SUFFIXES, SourceFile, read_sources
from qa.records import Document
from qa.split import split_document


def split_file(folder: Path, name: str, content: bytes) -> tuple[SourceFile, Document]:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / name).write_bytes(content)
    readable, skipped = read_sources(folder)
    assert skipped == []
    [source_file] = readable
    return source_file, split_document(source_file)


def assert_offsets_slice_the_text(document: Document) -> None:
    for record in (*document.passages, *document.sentences):
        assert document.text[record.start : record.end] == record.text, record


def test_supported_suffixes_list_every_format() -> None:
    assert set(SUPPORTED_SUFFIXES) == {".txt", ".md", ".pdf", ".html", ".htm", ".docx"}


# --- PDF -------------------------------------------------------------------------------


def test_pdf_pages_are_joined_with_their_spans_recorded() -> None:
    extracted = extract_pdf(two_page_pdf())
    assert extracted.title == "Harbour report"
    assert [span.page for span in extracted.pages] == [1, 2]
    page_one, page_two = (extracted.text[span.start : span.end] for span in extracted.pages)
    assert PDF_PAGE_ONE in page_one and page_one.startswith("Harbour traffic")
    assert page_two == PDF_PAGE_TWO


def test_pdf_records_carry_their_page_and_never_straddle_one(tmp_path: Path) -> None:
    source_file, document = split_file(tmp_path, "report.pdf", two_page_pdf())
    assert_offsets_slice_the_text(document)
    assert source_file.format == "pdf"
    assert [(p.page, p.section, p.text) for p in document.passages] == [
        (1, "Harbour traffic", PDF_PAGE_ONE),
        (1, "Harbour traffic", "Second paragraph is short."),
        (2, "Harbour traffic", PDF_PAGE_TWO),
    ]
    spans = {span.page: span for span in source_file.pages}
    for record in (*document.passages, *document.sentences):
        assert spans[record.page].start <= record.start and record.end <= spans[record.page].end


def test_pdf_wrapped_lines_join_and_short_lines_end_paragraphs() -> None:
    page = "A heading\nThe first line of a paragraph that wraps at the\nright margin and ends here.\n\nNext one."
    assert pdf_paragraphs(page) == [
        "A heading",
        "The first line of a paragraph that wraps at the right margin and ends here.",
        "Next one.",
    ]
    assert pdf_paragraphs("a long line of words that ends in a hyphen- \ncated word and so on") == [
        "a long line of words that ends in a hyphen-cated word and so on"
    ]


@settings(max_examples=60, deadline=None)
@given(st.lists(st.text(alphabet="abc XYZ.,\n\t", max_size=60), max_size=6))
def test_pdf_paragraphs_keep_every_word_in_order_on_single_lines(lines: list[str]) -> None:
    paragraphs = pdf_paragraphs("\n".join(lines))
    assert all(p and "\n" not in p and p == p.strip() for p in paragraphs)
    assert " ".join(paragraphs).split() == "\n".join(lines).split()


# --- HTML ------------------------------------------------------------------------------


def test_html_main_text_without_boilerplate_and_h1_to_h3_as_sections(tmp_path: Path) -> None:
    source_file, document = split_file(tmp_path, "tides.html", HTML_PAGE.encode("utf-8"))
    assert_offsets_slice_the_text(document)
    assert (source_file.format, source_file.title) == ("html", "Tide tables explained")
    for phrase in HTML_BOILERPLATE:
        assert phrase not in source_file.text
    assert sorted(source_file.headings.values()) == ["How tides work", "Neap tides", "Spring tides"]
    sections = {p.text.split()[0]: p.section for p in document.passages}
    assert sections["Tides"] == "How tides work"
    assert sections["Spring"] == "Spring tides"
    # An <h4> is content, not a section.
    assert sections["A"] == "Neap tides" and sections["The"] == "Neap tides"
    assert all(p.page is None for p in document.passages)


def test_short_html_page_keeps_its_structure_and_drops_navigation() -> None:
    page = (
        b"<html><head><title>Memo</title></head><body><nav><a href='/'>Home</a> <a href='/a'>About us</a></nav>"
        b"<h1>Meeting memo</h1><p>The meeting moved to Tuesday at noon.</p><h2>Budget</h2><p>Bring the budget.</p>"
        b"<footer>Copyright 2024, all rights reserved</footer></body></html>"
    )
    extracted = extract_html(page)
    assert extracted.text == "Meeting memo\n\nThe meeting moved to Tuesday at noon.\n\nBudget\n\nBring the budget."
    assert extracted.headings == {1: "Meeting memo", 5: "Budget"}


def test_html_inline_markup_is_plain_text() -> None:
    text = extract_html(HTML_PAGE.encode("utf-8")).text
    assert "pull of the moon and the sun" in text and "<b>" not in text and "**" not in text


# --- DOCX ------------------------------------------------------------------------------


def test_docx_headings_become_sections_and_paragraphs_are_kept(tmp_path: Path) -> None:
    source_file, document = split_file(tmp_path, "memo.docx", docx_bytes())
    assert_offsets_slice_the_text(document)
    assert (source_file.format, source_file.title) == ("docx", "Canteen memo")
    assert [(p.section, p.text) for p in document.passages] == [
        ("Canteen changes", "From Monday the canteen opens at seven. Breakfast is served until ten."),
        ("Menu", "The soup of the day costs two euros and comes with fresh bread."),
        ("Menu", "Dessert | Apple pie"),
    ]


def test_docx_style_based_on_a_heading_is_a_heading() -> None:
    document, out = docx.Document(), BytesIO()
    house = document.styles.add_style("Memo Heading", WD_STYLE_TYPE.PARAGRAPH)
    house.base_style = document.styles["Heading 2"]
    document.add_paragraph("Opening hours", style="Memo Heading")
    document.add_paragraph("The office opens at eight.")
    document.save(out)
    assert extract_docx(out.getvalue()).headings == {1: "Opening hours"}


def test_docx_without_title_property_has_no_title() -> None:
    document, out = docx.Document(), BytesIO()
    document.add_paragraph("Just one line of text.")
    document.save(out)
    assert extract_docx(out.getvalue()).title is None


# --- any structured text ---------------------------------------------------------------


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.text(alphabet="ab .?\u00e9", min_size=1, max_size=30), st.booleans()), max_size=8))
def test_built_text_splits_into_exact_spans_under_the_right_sections(blocks: list[tuple[str, bool]]) -> None:
    builder = _TextBuilder()
    kept = [(text.strip(), heading) for text, heading in blocks if text.strip()]
    for text, heading in kept:
        builder.add(text, heading)
    document = split_document(SourceFile("x.html", "0" * 64, builder.text, "html", None, builder.headings))
    assert_offsets_slice_the_text(document)
    section, expected = None, []
    for text, heading in kept:
        if heading:
            section = text
        else:
            expected.append((section, text))
    assert [(p.section, p.text) for p in document.passages] == expected


# --- skipped files ---------------------------------------------------------------------


@pytest.mark.parametrize("algorithm", [None, "AES-256"])
def test_pdf_encrypted_with_an_empty_user_password_is_read(algorithm: str | None) -> None:
    extracted = extract_pdf(encrypted_pdf("", algorithm))
    assert PDF_PAGE_TWO in extracted.text and len(extracted.pages) == 2


def test_pdf_needing_a_missing_decryption_library_says_what_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    def aes_reader(stream: BytesIO) -> None:
        raise DependencyError("cryptography>=3.1 is required for AES algorithm")

    monkeypatch.setattr(qa.ingest.extract, "PdfReader", aes_reader)
    with pytest.raises(Unextractable, match=r"encrypted, and opening it needs `pip install pypdf\[crypto\]`"):
        extract_pdf(b"%PDF-1.7")


def test_blank_pdf_page_keeps_the_numbering_of_later_pages(tmp_path: Path) -> None:
    source_file, document = split_file(tmp_path, "gap.pdf", pdf_bytes([[PDF_PAGE_ONE], [], [PDF_PAGE_TWO]]))
    assert [span.page for span in source_file.pages] == [1, 2, 3]
    assert source_file.pages[1] == PageSpan(2, source_file.pages[1].start, source_file.pages[1].start)
    assert [p.page for p in document.passages] == [1, 3]
