"""Small PDF, HTML and DOCX files written by the tests themselves; nothing is fetched."""

from __future__ import annotations

from io import BytesIO

import docx
from fpdf import FPDF
from pypdf import PdfReader, PdfWriter

PDF_PAGE_ONE = (
    "The harbour handled more container ships this year than in any year before. Dock workers unloaded "
    "cargo from forty nations, and the port authority added two cranes to keep the queues short at the "
    "eastern quay."
)
PDF_PAGE_TWO = "The lighthouse keeper retired in March after thirty-one years of service on the northern cliff."

HTML_PAGE = """<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>Tide tables explained</title></head>
<body>
<nav><ul><li><a href="/">Home</a></li><li><a href="/about">About the harbour gazette</a></li>
<li><a href="/subscribe">Subscribe to our newsletter for weekly sailing news</a></li></ul></nav>
<main><article>
<h1>How tides work</h1>
<p>Tides are the regular rise and fall of the sea caused by the gravitational pull of the <b>moon</b>
and the sun on the oceans of the Earth.</p>
<h2>Spring tides</h2>
<p>Spring tides happen twice a month, when the sun, the moon and the Earth line up and their pulls add
together.</p>
<h3>Neap tides</h3>
<p>Neap tides happen when the sun and moon pull at right angles, so the range between high and low water
is smallest.</p>
<h4>A footnote heading</h4>
<p>The largest tidal range in the world is found in the Bay of Fundy in Canada.</p>
</article></main>
<footer><p>Copyright 2024 Harbour Gazette Media. All rights reserved. Read our privacy policy and
cookie settings.</p></footer>
</body></html>
"""
HTML_BOILERPLATE = ("Subscribe", "newsletter", "Copyright", "privacy policy", "About the harbour gazette")


def pdf_bytes(pages: list[list[str]], title: str | None = "Harbour report") -> bytes:
    """A PDF with one page per list of paragraphs; a paragraph starting with "# " is a bold heading."""
    pdf = FPDF()
    if title:
        pdf.set_title(title)
    for paragraphs in pages:
        pdf.add_page()
        for paragraph in paragraphs:
            heading = paragraph.startswith("# ")
            pdf.set_font("Helvetica", "B" if heading else "", 16 if heading else 12)
            pdf.multi_cell(0, 8, paragraph.removeprefix("# "))
            pdf.ln(4)
    return bytes(pdf.output())


def two_page_pdf() -> bytes:
    """Page 1: a heading and the harbour paragraph; page 2: the lighthouse paragraph."""
    return pdf_bytes([["# Harbour traffic", PDF_PAGE_ONE, "Second paragraph is short."], [PDF_PAGE_TWO]])


def image_only_pdf() -> bytes:
    """A PDF whose one page holds a drawing and no text layer, like a scan."""
    pdf = FPDF()
    pdf.add_page()
    pdf.rect(20, 20, 100, 60, style="F")
    return bytes(pdf.output())


def encrypted_pdf(user_password: str, algorithm: str | None = None) -> bytes:
    """The two-page PDF encrypted; an empty user password opens without asking, like many real PDFs."""
    writer = PdfWriter(clone_from=PdfReader(BytesIO(two_page_pdf())))
    writer.encrypt(user_password, "owner secret", algorithm=algorithm)
    out = BytesIO()
    writer.write(out)
    return out.getvalue()


def docx_bytes() -> bytes:
    """A memo with a title, two headings, paragraphs (one with a soft line break) and a table."""
    document = docx.Document()
    document.core_properties.title = "Canteen memo"
    document.add_heading("Canteen changes", level=1)
    document.add_paragraph("From Monday the canteen opens at seven.\nBreakfast is served until ten.")
    document.add_heading("Menu", level=2)
    document.add_paragraph("")
    document.add_paragraph("The soup of the day costs two euros and comes with fresh bread.")
    table = document.add_table(rows=1, cols=3)
    table.cell(0, 0).text = "Dessert"
    table.cell(0, 1).merge(table.cell(0, 2)).text = "Apple pie"
    out = BytesIO()
    document.save(out)
    return out.getvalue()
