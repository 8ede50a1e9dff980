"""Split a document's text into paragraphs, sections, sentences and word windows, with exact offsets.

Every span is a pair of offsets into the text qa/ingest/seeds.py read, trimmed of
whitespace and never rebuilt from pieces, so `text[start:end]` is the record's
text. Changing how text is split changes the records: bump SCHEMA_VERSION
(qa/storage/manifest.py) with it.
"""

from __future__ import annotations

import re
from collections import Counter

import blingfire

from qa.ingest.extract import page_at
from qa.ingest.seeds import SourceFile, is_blank
from qa.records import Document, Passage, Sentence, content_id

_MARKDOWN_HEADING = re.compile(r"^ {0,3}(#{1,6})[ \t]+(?P<title>.*?)[ \t#]*$")
# A short line is a heading unless it ends the way a sentence or quote ends.
# An acronym such as "U.S." ends with a period but not a sentence, so a heading
# like "Fentanyl's spread in the U.S." is still recognised.
_SENTENCE_END = re.compile(r"[.!?:;,\"'\u201d\u2019)\]]$")
_ACRONYM_END = re.compile(r"(?:\b[A-Z]\.){2,}$")
_MAX_HEADING_CHARS = 80
_MAX_HEADING_WORDS = 10


def trim_span(text: str, start: int, end: int) -> tuple[int, int]:
    """Shrink [start, end) past surrounding whitespace."""
    while start < end and is_blank(text[start]):
        start += 1
    while end > start and is_blank(text[end - 1]):
        end -= 1
    return start, end


def markdown_title(line: str) -> str | None:
    """The title of a markdown `#` heading line, else None."""
    markdown = _MARKDOWN_HEADING.match(line)
    if not markdown:
        return None
    title = markdown.group("title")
    start, end = trim_span(title, 0, len(title))
    return title[start:end] or None


def short_line_title(line: str) -> str | None:
    """The line itself if it could be a plain-text heading: short, capitalised, not ending a sentence."""
    start, end = trim_span(line, 0, len(line))
    stripped = line[start:end]
    if not stripped or len(stripped) > _MAX_HEADING_CHARS:
        return None
    if len(stripped.split()) > _MAX_HEADING_WORDS or not stripped[0].isupper():
        return None
    if _SENTENCE_END.search(stripped) and not _ACRONYM_END.search(stripped):
        return None
    return stripped


def heading_lines(lines: list[tuple[int, str]]) -> dict[int, str]:
    """Which of the non-blank (line number, line) pairs are headings, with their titles.

    A heading needs content after it, so the last line is never one. A short
    line is a heading only when it stands alone, with ordinary content after
    it and no other short line before it: a run of short lines (a list of
    names, an address, verse) stays content and is never lost.
    """
    headings = {}
    for position, (number, line) in enumerate(lines[:-1]):
        title = markdown_title(line)
        following = lines[position + 1][1]
        before = lines[position - 1][1] if position else None
        alone = before is None or markdown_title(before) is not None or short_line_title(before) is None
        ordinary_after = markdown_title(following) is None and short_line_title(following) is None
        if title is None and alone and ordinary_after:
            title = short_line_title(line)
        if title is not None:
            headings[number] = title
    return headings


def sentence_spans(text: str, start: int, end: int) -> list[tuple[int, int]]:
    """Sentence spans inside text[start:end], as absolute offsets, trimmed and non-empty."""
    chunk = text[start:end]
    _, offsets = blingfire.text_to_sentences_and_offsets(chunk)
    spans = []
    cursor = 0
    for rel_start, rel_end in offsets:
        # Guard against out-of-order or out-of-range offsets: never emit a span
        # that overlaps the previous one or leaves the paragraph.
        rel_start, rel_end = max(rel_start, cursor), min(rel_end, len(chunk))
        span = trim_span(text, start + rel_start, start + rel_end)
        if span[1] > span[0]:
            spans.append(span)
            cursor = rel_end
    if not spans:
        spans.append(trim_span(text, start, end))
    return spans


_WORD = re.compile(r"\S+")
# Window size in words, and the step between windows. A long sentence's vector
# averages over everything it says, so a question about one clause of it scores
# low; windows of about a clause each let that clause be matched on its own.
# Their vectors are pooled from the sentence's own token vectors
# (qa/embed/encoder.py), so they cost no embedding of their own.
WINDOW_WORDS = 12
WINDOW_STEP = 6


def word_windows(text: str, start: int, end: int) -> list[tuple[int, int]]:
    """Overlapping spans of WINDOW_WORDS words inside text[start:end]; none if it is shorter."""
    words = [match.span() for match in _WORD.finditer(text, start, end)]
    if len(words) <= WINDOW_WORDS:
        return []
    spans = []
    for first in range(0, len(words), WINDOW_STEP):
        last = min(first + WINDOW_WORDS, len(words)) - 1
        spans.append((words[first][0], words[last][1]))
        if last == len(words) - 1:
            break
    return spans


def _line_spans(text: str) -> list[tuple[int, int]]:
    spans, position = [], 0
    for line in text.split("\n"):
        spans.append((position, position + len(line)))
        position += len(line) + 1
    return spans


def split_document(source_file: SourceFile) -> Document:
    """Split a document into paragraphs (one per non-blank line) and sentences.

    A paragraph ends at a blank line or a single newline. Heading lines set the
    section of the paragraphs after them and are not passages themselves.
    """
    text, source = source_file.text, source_file.source
    passages: list[Passage] = []
    sentences: list[Sentence] = []
    seen: Counter[tuple[str, str]] = Counter()
    section: str | None = None
    line_spans = _line_spans(text)
    non_blank = [
        (number, text[start:end])
        for number, (start, end) in enumerate(line_spans, start=1)
        if trim_span(text, start, end)[0] < end
    ]
    headings = source_file.headings if source_file.headings is not None else heading_lines(non_blank)
    for line_number, (line_start, line_end) in enumerate(line_spans, start=1):
        start, end = trim_span(text, line_start, line_end)
        if start == end:
            continue
        if line_number in headings:
            section = headings[line_number]
            continue
        passage_text = text[start:end]
        seen["passage", passage_text] += 1
        passage = Passage(
            id=content_id("passage", source, passage_text, str(seen["passage", passage_text])),
            source=source,
            paragraph=len(passages) + 1,
            line=line_number,
            section=section,
            start=start,
            end=end,
            text=passage_text,
            page=page_at(source_file.pages, start),
        )
        passages.append(passage)
        for sentence_start, sentence_end in sentence_spans(text, start, end):
            sentence_text = text[sentence_start:sentence_end]
            seen["sentence", sentence_text] += 1
            sentences.append(
                Sentence(
                    id=content_id("sentence", source, sentence_text, str(seen["sentence", sentence_text])),
                    passage_id=passage.id,
                    source=source,
                    paragraph=passage.paragraph,
                    line=line_number,
                    section=section,
                    start=sentence_start,
                    end=sentence_end,
                    text=sentence_text,
                    page=passage.page,
                )
            )
    return Document(
        source, source_file.sha256, text, tuple(passages), tuple(sentences), source_file.format, source_file.title
    )
