"""Load seed documents and split them into passages and sentences with exact offsets.

A .txt or .md document's text is what `Path.read_text(encoding="utf-8")`
returns (universal newlines); a PDF, HTML or DOCX document's text is what
qa/extract.py makes of it. Either way the index stores that text, and every
offset can be checked with one slice of it.
"""

from __future__ import annotations

import hashlib
import logging
import re
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import blingfire

from qa.errors import SeedsError
from qa.extract import EXTRACTORS, PageSpan, Unextractable, page_at
from qa.schema import Document, Passage, Sentence, content_id

logger = logging.getLogger(__name__)

# Plain text is read as it is; the other formats go through qa/extract.py.
SUPPORTED_SUFFIXES = (".txt", ".md", *EXTRACTORS)
FORMATS_HINT = "add .txt, .md, .pdf, .html or .docx files"


def is_blank(character: str) -> bool:
    """Whitespace, or U+FEFF (a byte-order mark), which is not whitespace to Python but never belongs in a quote."""
    return character.isspace() or character == "\ufeff"


_MARKDOWN_HEADING = re.compile(r"^ {0,3}(#{1,6})[ \t]+(?P<title>.*?)[ \t#]*$")
# A short line is a heading unless it ends the way a sentence or quote ends.
# An acronym such as "U.S." ends with a period but not a sentence, so a heading
# like "Fentanyl's spread in the U.S." is still recognised.
_SENTENCE_END = re.compile(r"[.!?:;,\"'\u201d\u2019)\]]$")
_ACRONYM_END = re.compile(r"(?:\b[A-Z]\.){2,}$")
_MAX_HEADING_CHARS = 80
_MAX_HEADING_WORDS = 10


@dataclass(frozen=True)
class SourceFile:
    """A readable seed file: its path relative to the seeds folder and the text it is indexed from.

    `headings` maps 1-based line numbers to heading titles when the format says
    which lines are headings; None leaves them to the plain-text rules.
    """

    source: str
    sha256: str
    text: str
    format: str = "txt"
    title: str | None = None
    headings: dict[int, str] | None = None
    pages: tuple[PageSpan, ...] = ()


@dataclass(frozen=True)
class SkippedFile:
    """A seed file that was not indexed, and why; sha256 of its bytes when they could be read."""

    source: str
    reason: str
    sha256: str | None = None


def discover(seeds_dir: Path) -> list[Path]:
    """Supported files under seeds_dir, sorted by their path relative to it."""
    if not seeds_dir.is_dir():
        raise SeedsError(f"seeds folder {seeds_dir} does not exist; create it and {FORMATS_HINT}")
    found = [p for p in seeds_dir.rglob("*") if p.suffix.lower() in SUPPORTED_SUFFIXES and p.is_file()]
    return sorted(found, key=lambda p: p.relative_to(seeds_dir).as_posix())


def _read_bytes(seeds_dir: Path, path: Path) -> bytes | SkippedFile:
    """The file's bytes, unless it lies outside seeds_dir or cannot be read."""
    source = path.relative_to(seeds_dir).as_posix()
    if not path.resolve().is_relative_to(seeds_dir.resolve()):
        return SkippedFile(source, "links outside the seeds folder (not followed)")
    try:
        return path.read_bytes()
    except OSError as error:
        return SkippedFile(source, f"cannot be read ({error.strerror})")


def source_hashes(seeds_dir: Path) -> dict[str, str]:
    """The sha256 of each readable supported file's bytes, without extracting text (cheap staleness checks)."""
    hashes = {}
    for path in discover(seeds_dir):
        data = _read_bytes(seeds_dir, path)
        if not isinstance(data, SkippedFile):
            hashes[path.relative_to(seeds_dir).as_posix()] = hashlib.sha256(data).hexdigest()
    return hashes


def read_source(seeds_dir: Path, path: Path) -> SourceFile | SkippedFile:
    """Read one seed file, or say why it cannot be indexed."""
    data = _read_bytes(seeds_dir, path)
    if isinstance(data, SkippedFile):
        return data
    source, suffix = path.relative_to(seeds_dir).as_posix(), path.suffix.lower()
    sha256 = hashlib.sha256(data).hexdigest()
    if suffix in EXTRACTORS:
        return _extracted_source(source, sha256, suffix, data)
    if b"\0" in data:
        return SkippedFile(source, "looks binary (contains NUL bytes)", sha256)
    try:
        decoded = data.decode("utf-8")
    except UnicodeDecodeError as error:
        return SkippedFile(source, f"is not valid UTF-8 (byte {error.start})", sha256)
    # Universal newlines, exactly as Path.read_text() returns the text.
    text = decoded.replace("\r\n", "\n").replace("\r", "\n")
    if all(is_blank(character) for character in text):
        return SkippedFile(source, "is empty", sha256)
    return SourceFile(source, sha256, text, suffix.lstrip("."))


def _extracted_source(source: str, sha256: str, suffix: str, data: bytes) -> SourceFile | SkippedFile:
    """A PDF, HTML or DOCX file's extracted text, or why it is skipped."""
    kind, extract = EXTRACTORS[suffix]
    try:
        extracted = extract(data)
    except Unextractable as error:
        return SkippedFile(source, str(error), sha256)
    # Seed files are untrusted input to third-party parsers, whose exceptions
    # for a corrupt file are many and undocumented (zip, XML, PDF syntax,
    # recursion, value errors); one bad file must never stop the build.
    except Exception as error:  # noqa: BLE001
        logger.debug("extracting %s failed", source, exc_info=True)
        reason = f"cannot be read as {kind.upper()} ({type(error).__name__}: {error}), not indexed"
        return SkippedFile(source, reason, sha256)
    return SourceFile(source, sha256, extracted.text, kind, extracted.title, extracted.headings, extracted.pages)


def read_sources(seeds_dir: Path) -> tuple[list[SourceFile], list[SkippedFile]]:
    """Every supported seed file, split into the readable ones and the skipped ones."""
    readable: list[SourceFile] = []
    skipped: list[SkippedFile] = []
    for path in discover(seeds_dir):
        result = read_source(seeds_dir, path)
        if isinstance(result, SkippedFile):
            logger.warning("skipping %s: %s", result.source, result.reason)
            skipped.append(result)
        else:
            readable.append(result)
    return readable, skipped


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
