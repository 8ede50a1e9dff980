"""The text of PDF, HTML and DOCX sources, laid out for the splitter in qa/split.py.

Each extractor returns the text a document is indexed from: one paragraph per
line, paragraphs separated by blank lines, headings on lines of their own. The
structured formats (HTML, DOCX) say which lines are headings, so nothing is
guessed for them; PDF has no such structure and leaves headings to the
splitter's short-line rule. The index stores this text, and every quote is a
slice of it (`index.source_text(source)`), not of the file's bytes.
"""

from __future__ import annotations

import re
from bisect import bisect_right
from collections.abc import Callable
from dataclasses import dataclass, field
from io import BytesIO
from typing import TYPE_CHECKING, Any

import docx
import trafilatura
from docx.table import Table, _Row
from docx.text.paragraph import Paragraph
from pypdf import PdfReader
from pypdf.errors import DependencyError
from trafilatura.settings import use_config
from trafilatura.utils import load_html

if TYPE_CHECKING:
    from lxml.etree import _Element

PARAGRAPH_BREAK = "\n\n"
_WHITESPACE = re.compile(r"\s+")
# trafilatura marks each <h1>-<h6> as <head rend="hN">; the first three name sections.
_SECTION_HEADINGS = {"h1", "h2", "h3"}
_HTML_BLOCKS = {"head", "p", "item", "row", "quote", "code"}
# trafilatura takes a main text under 250 characters for a failed extraction
# and falls back to the whole page, navigation included, as one paragraph;
# seed pages are often short memos, so any main text it finds is accepted.
_TRAFILATURA_CONFIG = use_config()
_TRAFILATURA_CONFIG.set("DEFAULT", "MIN_EXTRACTED_SIZE", "1")
_DOCX_HEADING = re.compile(r"^(Heading \d|Title)$")
# A PDF line shorter than this share of the page's longest line ends its
# paragraph: text is wrapped at the page width, so only a paragraph's last line
# (or a heading) stops well short of it.
_PDF_SHORT_LINE = 0.75
_PDF_HEADER = b"%PDF-"


class Unextractable(Exception):
    """The file holds nothing that can be indexed; the message says why, for the build report."""


@dataclass(frozen=True)
class PageSpan:
    """Where one PDF page's text lies in the extracted text (1-based page number)."""

    page: int
    start: int
    end: int


@dataclass(frozen=True)
class Extracted:
    """A document's text as indexed, its title, heading lines and (PDF) page spans.

    `headings` maps 1-based line numbers to heading titles; None leaves
    headings to the splitter's plain-text rules.
    """

    text: str
    title: str | None = None
    headings: dict[int, str] | None = None
    pages: tuple[PageSpan, ...] = ()


def page_at(pages: tuple[PageSpan, ...], offset: int) -> int | None:
    """The number of the page whose span holds `offset`; None when the text has no pages.

    A blank page's span is empty and starts where the next page starts, so the
    last span starting at or before `offset` is the page the text is on.
    """
    if not pages:
        return None
    position = bisect_right([span.start for span in pages], offset) - 1
    return pages[max(position, 0)].page


@dataclass
class _TextBuilder:
    """Appends one-line blocks separated by blank lines, tracking offsets and line numbers."""

    parts: list[str] = field(default_factory=list)
    length: int = 0
    line: int = 1
    headings: dict[int, str] = field(default_factory=dict)

    def add(self, block: str, heading: bool = False) -> None:
        if self.parts:
            self._append(PARAGRAPH_BREAK)
        if heading:
            self.headings[self.line] = block
        self._append(block)

    def _append(self, piece: str) -> None:
        self.parts.append(piece)
        self.length += len(piece)
        self.line += piece.count("\n")

    @property
    def text(self) -> str:
        return "".join(self.parts)


def one_line(text: str) -> str:
    """text with every run of whitespace made one space, trimmed.

    The extracted text is built here, not sliced from the file, so collapsing
    layout whitespace (soft line breaks, tabs, justification) is safe: quotes
    are checked against the built text.
    """
    return _WHITESPACE.sub(" ", text).strip()


def _join_wrapped(lines: list[str]) -> str:
    """Lines of one wrapped paragraph as one line; a word hyphenated across lines keeps its hyphen."""
    joined = lines[0]
    for line in lines[1:]:
        glued = joined.endswith("-") and joined[-2:-1].isalpha() and line[:1].islower()
        joined += line if glued else " " + line
    return joined


def pdf_paragraphs(page_text: str) -> list[str]:
    """The paragraphs of one page's text: wrapped lines joined; a blank or short line ends a paragraph."""
    lines = [one_line(line) for line in page_text.splitlines()]
    longest = max((len(line) for line in lines), default=0)
    paragraphs: list[str] = []
    current: list[str] = []
    for line in lines:
        if line:
            current.append(line)
        if current and len(line) < _PDF_SHORT_LINE * longest:
            paragraphs.append(_join_wrapped(current))
            current = []
    if current:
        paragraphs.append(_join_wrapped(current))
    return paragraphs


def extract_pdf(data: bytes) -> Extracted:
    """Text per page, pages in order; a paragraph never runs across a page break.

    Raises:
        Unextractable: not a PDF at all, encrypted with a password or with AES
            but no AES library, or no page has a text layer (no OCR).
    """
    # Without this check pypdf reads on past the missing header and fails later
    # with a stream error that never says the file is not a PDF. Readers accept
    # the header anywhere in the first 1,024 bytes, so this refuses no real PDF.
    if _PDF_HEADER not in data[:1024]:
        raise Unextractable("is not a PDF (no %PDF- header), not indexed")
    try:
        reader = PdfReader(BytesIO(data))
        # pypdf opens files with an empty user password by itself; only a real password stops it.
        if reader.is_encrypted and not reader.decrypt(""):
            raise Unextractable("encrypted, not indexed")
    except DependencyError as error:
        # AES decryption needs the optional `cryptography` package (pypdf[crypto]).
        reason = f"encrypted, and opening it needs `pip install pypdf[crypto]` ({error}), not indexed"
        raise Unextractable(reason) from error
    builder = _TextBuilder()
    pages = []
    for number, page in enumerate(reader.pages, start=1):
        start = builder.length + (len(PARAGRAPH_BREAK) if builder.parts else 0)
        paragraphs = pdf_paragraphs(page.extract_text())
        for paragraph in paragraphs:
            builder.add(paragraph)
        pages.append(PageSpan(number, start, builder.length) if paragraphs else PageSpan(number, start, start))
    if not builder.parts:
        raise Unextractable("no extractable text, not indexed (no text layer; OCR is not done)")
    title = one_line(reader.metadata.title or "") if reader.metadata else ""
    return Extracted(builder.text, title or None, None, tuple(pages))


def _html_block(element: _Element) -> str:
    """One block's text as it stands, lines and all; table rows keep their cells apart."""
    if element.tag == "row":
        return " | ".join(one_line("".join(cell.itertext())) for cell in element)
    return "".join(element.itertext())


def extract_html(data: bytes) -> Extracted:
    """The page's main text (trafilatura drops navigation, footers and comments); <h1>-<h3> are sections.

    Raises:
        Unextractable: not parseable as HTML, or no main text found.
    """
    tree = load_html(data)
    if tree is None:
        raise Unextractable("cannot be parsed as HTML, not indexed")
    title = one_line(tree.findtext(".//title") or "") or None
    result = trafilatura.bare_extraction(
        tree, include_comments=False, include_tables=True, with_metadata=False, config=_TRAFILATURA_CONFIG
    )
    body = getattr(result, "body", None)
    builder = _TextBuilder()
    for element in body.iter() if body is not None else ():
        outer = next((a for a in element.iterancestors() if a.tag in _HTML_BLOCKS), None)
        if element.tag not in _HTML_BLOCKS or outer is not None:
            continue
        heading = element.tag == "head" and element.get("rend") in _SECTION_HEADINGS
        # trafilatura's last-resort extraction puts the page's lines in one <p>, one per line.
        for line in _html_block(element).splitlines():
            if one_line(line):
                builder.add(one_line(line), heading)
    if not builder.parts:
        raise Unextractable("no main text found, not indexed")
    return Extracted(builder.text, title, builder.headings)


def _docx_row(row: _Row) -> str:
    """A table row's cells as one line; a merged cell, repeated once per grid column it spans, is kept once."""
    cells: list[Any] = []
    for cell in row.cells:
        if not cells or cell is not cells[-1]:  # python-docx yields the very same object per spanned column
            cells.append(cell)
    return " | ".join(text for text in (one_line(cell.text) for cell in cells) if text)


def _is_docx_heading(paragraph: Paragraph) -> bool:
    """True for a "Heading N" or "Title" paragraph, or one whose style is based on such a style."""
    style = paragraph.style
    seen = 0
    # House styles are often built on the built-in headings; the chain is short, the cap guards against loops.
    while style is not None and seen < 8:
        if _DOCX_HEADING.match(style.name or ""):
            return True
        style, seen = style.base_style, seen + 1
    return False


def extract_docx(data: bytes) -> Extracted:
    """Paragraphs and table rows in document order; "Heading N" and "Title" paragraphs are sections.

    Raises:
        Unextractable: the document has no text.
    """
    document = docx.Document(BytesIO(data))
    builder = _TextBuilder()
    for block in document.iter_inner_content():
        if isinstance(block, Table):
            for row in block.rows:
                text = _docx_row(row)
                if text:
                    builder.add(text)
            continue
        text = one_line(block.text)
        if text:
            builder.add(text, heading=_is_docx_heading(block))
    if not builder.parts:
        raise Unextractable("no text, not indexed")
    title = one_line(document.core_properties.title or "") or None
    return Extracted(builder.text, title, builder.headings)


EXTRACTORS: dict[str, tuple[str, Callable[[bytes], Extracted]]] = {
    ".pdf": ("pdf", extract_pdf),
    ".html": ("html", extract_html),
    ".htm": ("html", extract_html),
    ".docx": ("docx", extract_docx),
}
