"""An answer as Markdown: each quote a blockquote followed by its citation, source text shown literally."""

from __future__ import annotations

import re

from qa.quotes import NOT_FOUND
from qa.records import Answer

# Every character CommonMark gives a meaning to somewhere in a line; a
# backslash before any ASCII punctuation shows it as itself, so escaping all
# of these is always safe. "<" and "&" are escaped too, so no HTML or entity
# in a document is ever rendered.
_SPECIAL = re.compile(r"([\\`*_{}\[\]()#+\-.!|<>&~=:\"'])")


def escape_markdown(text: str) -> str:
    """Text with Markdown's special characters backslash-escaped and line breaks kept as spaces."""
    flat = " ".join(text.split("\n"))
    return _SPECIAL.sub(r"\\\1", flat)


def render_markdown(answer: Answer) -> str:
    """The answer's quotes as Markdown blockquotes, each followed by its citation; or "Not found" when none.

    A quote spanning lines becomes one blockquote line, so the blockquote
    stays one block; its text is escaped, so `*stars*` stay stars.
    """
    if not answer.answered or not answer.quotes:
        return escape_markdown(NOT_FOUND) + "\n"
    blocks = []
    for quote in answer.quotes:
        blocks.append(f"> {escape_markdown(quote.text)}\n\n{escape_markdown(quote.citation)}\n")
    return "\n".join(blocks)
