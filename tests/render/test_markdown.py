"""An answer as Markdown: blockquotes with citations, source text escaped so it shows literally."""

from __future__ import annotations

from qa.records import Answer, Citation, Quote
from qa.render.markdown import escape_markdown, render_markdown


def _answer(*texts: str) -> Answer:
    quotes = [
        Quote(text, Citation("doc_1.md", 10 * n, 10 * n + len(text), "Intro *", 2, 3), 0.5, text, 10 * n)
        for n, text in enumerate(texts)
    ]
    return Answer("q", True, 0.9, quotes)


def test_each_quote_is_a_blockquote_followed_by_its_citation() -> None:
    rendered = render_markdown(_answer("First quote.", "Second quote."))
    blocks = rendered.split("\n\n")
    assert blocks[0] == "> First quote\\." and blocks[1].startswith('doc\\_1\\.md § \\"Intro \\*\\"')
    assert blocks[2] == "> Second quote\\." and "chars 10\\-23" in blocks[3]


def test_markdown_special_characters_in_source_text_are_escaped() -> None:
    text = "*stars* _under_ `code` [x](javascript:alert(1)) <b>bold</b> # not a heading | a table & more"
    escaped = escape_markdown(text)
    for special in "*_`[]()<>#|&":
        assert special not in escaped.replace("\\" + special, "")
    assert escaped.replace("\\", "") == text


def test_a_quote_spanning_lines_stays_one_blockquote_and_not_found_says_so() -> None:
    assert render_markdown(_answer("one\ntwo")).startswith("> one two\n")
    assert render_markdown(Answer("q", False, 0.1)) == "Not found in the sources\\.\n"
