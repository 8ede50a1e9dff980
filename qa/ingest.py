"""Find the seed files and read each into the text it is indexed from, or say why it is skipped.

A .txt or .md document's text is what `Path.read_text(encoding="utf-8")`
returns (universal newlines); a PDF, HTML or DOCX document's text is what
qa/extract.py makes of it. Either way the index stores that text, and every
offset qa/split.py makes can be checked with one slice of it.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from pathlib import Path

from qa.errors import SeedsError
from qa.extract import EXTRACTORS, PageSpan, Unextractable

logger = logging.getLogger(__name__)

# Plain text is read as it is; the other formats go through qa/extract.py.
SUPPORTED_SUFFIXES = (".txt", ".md", *EXTRACTORS)
FORMATS_HINT = "add .txt, .md, .pdf, .html or .docx files"


def is_blank(character: str) -> bool:
    """Whitespace, or U+FEFF (a byte-order mark), which is not whitespace to Python but never belongs in a quote."""
    return character.isspace() or character == "\ufeff"


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
    if not data:
        # One reason for every format, rather than each parser's own complaint about nothing.
        return SkippedFile(source, "is empty", sha256)
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
    except Exception as error:
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
