"""What qa/render/html.py's HTML may hold: its own tags, and text in which no `<` or `>` survives."""

from __future__ import annotations

import re

# The only tags render.py writes; anything else that starts with "<" came from text.
OUR_TAGS = re.compile(r"</?(?:div|p|strong|blockquote|sup|ol|ul|li|details|summary|code|mark|span|button|pre)(?: [^<>]*)?>")


def text_outside_tags(markup: str) -> str:
    return OUR_TAGS.sub("", markup)


def assert_no_markup_from_text(markup: str) -> None:
    outside = text_outside_tags(markup)
    assert "<" not in outside and ">" not in outside, outside
