"""Find the seed files and read each into the text it is indexed from, or say why it is skipped.

A .txt or .md document's text is what `Path.read_text(encoding="utf-8")`
returns (universal newlines); a PDF, HTML or DOCX document's text is what
qa/extract.py makes of it. Either way the index stores that text, and every
offset qa/split.py makes can be checked with one slice of it.
"""

from __future__ import annotations

import hashlib
import logging
import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from qa.config import DEFAULT_MAX_FILE_MB
from qa.errors import SeedsError
from qa.ingest.extract import EXTRACTORS, PageSpan, Unextractable
from qa.records import SkippedFile

logger = logging.getLogger(__name__)

# Plain text is read as it is; the other formats go through qa/extract.py.
SUPPORTED_SUFFIXES = (".txt", ".md", *EXTRACTORS)
FORMATS_HINT = "add .txt, .md, .pdf, .html or .docx files"
# Megabytes are MiB, as QA_MAX_UPLOAD_MB counts them, so the two limits compare directly.
MEGABYTE = 1024 * 1024


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
    # True for a file whose bytes the live index holds already: it was hashed
    # but not extracted (`text` is empty, and so are title and pages); a build
    # keeps its records and its manifest entry instead.
    reused: bool = False
    # The file's bytes, when it was read to be extracted elsewhere (a build on a
    # Ray cluster, qa/cluster/ray_build.py): `text` is empty until extract_source runs.
    data: bytes | None = field(default=None, repr=False)


def discover(seeds_dir: Path) -> list[Path]:
    """Supported files and links to folders under seeds_dir, sorted by their path relative to it.

    Links to folders are listed only so that reading them reports them as not followed.
    """
    if not seeds_dir.is_dir():
        raise SeedsError(f"seeds folder {seeds_dir} does not exist; create it and {FORMATS_HINT}")
    return sorted(_walk(seeds_dir), key=lambda p: p.relative_to(seeds_dir).as_posix())


def _walk(seeds_dir: Path) -> Iterator[Path]:
    # A stack rather than Path.rglob, which on Python 3.11 recurses once per
    # folder level and raises RecursionError about 1,000 levels down. Like
    # rglob, it never descends into a link to a folder, so a link to an
    # ancestor cannot loop and a link to a folder elsewhere is never walked.
    folders = [seeds_dir]
    while folders:
        folder = folders.pop()
        try:
            with os.scandir(folder) as entries:
                listed = list(entries)
        except OSError as error:
            logger.warning("cannot list folder %s (%s); the files in it are not indexed", folder, error.strerror)
            continue
        for entry in listed:
            if entry.is_dir(follow_symlinks=False):
                folders.append(Path(entry.path))
                continue
            linked_folder = entry.is_symlink() and entry.is_dir()
            supported_file = Path(entry.name).suffix.lower() in SUPPORTED_SUFFIXES and entry.is_file()
            if linked_folder or supported_file:
                yield Path(entry.path)


def _read_bytes(seeds_dir: Path, path: Path, max_file_mb: float, root: Path | None = None) -> bytes | SkippedFile:
    """The file's bytes, unless it lies outside seeds_dir, is a link to a folder, is too large or cannot be read.

    `root` is seeds_dir resolved, when the caller has resolved it once for many files.
    """
    source = path.relative_to(seeds_dir).as_posix()
    if not path.resolve().is_relative_to(root or seeds_dir.resolve()):
        return SkippedFile(source, "links outside the seeds folder (not followed)")
    if path.is_dir():
        # Only a link reaches here (discover walks real folders itself), and
        # its target lies inside seeds, so those files are read under their own paths.
        return SkippedFile(
            source, "links to a folder inside the seeds folder (not followed: its files are read where they are)"
        )
    try:
        size = path.stat().st_size
        if size > max_file_mb * MEGABYTE:
            return SkippedFile(source, too_large(size, max_file_mb))
        return path.read_bytes()
    except OSError as error:
        return SkippedFile(source, f"cannot be read ({error.strerror})")


def too_large(size: int, max_file_mb: float) -> str:
    """Why a file of `size` bytes is skipped under a limit of max_file_mb."""
    # Under a tenth of a megabyte (only with a tiny limit) "0.0 MB" would say nothing.
    shown = f"{size / MEGABYTE:.1f} MB" if size >= MEGABYTE / 10 else f"{size:,} bytes"
    return f"is {shown}, over the {max_file_mb:g} MB limit (set QA_MAX_FILE_MB to raise it)"


def source_hashes(seeds_dir: Path, max_file_mb: float = DEFAULT_MAX_FILE_MB) -> dict[str, str]:
    """The sha256 of each readable supported file's bytes, without extracting text (cheap staleness checks).

    Files a build would skip unread (over max_file_mb, links leading outside) are left out, unread here too.
    """
    hashes = {}
    root = seeds_dir.resolve()
    for path in discover(seeds_dir):
        data = _read_bytes(seeds_dir, path, max_file_mb, root)
        if not isinstance(data, SkippedFile):
            hashes[path.relative_to(seeds_dir).as_posix()] = hashlib.sha256(data).hexdigest()
    return hashes


def read_source(
    seeds_dir: Path,
    path: Path,
    max_file_mb: float = DEFAULT_MAX_FILE_MB,
    already_read: Mapping[str, str] | None = None,
    root: Path | None = None,
    indexed: Mapping[str, str] | None = None,
    extract: bool = True,
) -> SourceFile | SkippedFile:
    """Read one seed file, or say why it cannot be indexed.

    Args:
        already_read: sha256 to source of the files read so far; a file with
            the same bytes as one of them is skipped as its duplicate, unparsed.
        root: seeds_dir resolved, when the caller reads many files.
        indexed: sha256 by source of what a live index holds; a file with the
            same bytes as there is not extracted again (SourceFile.reused).
        extract: False leaves the text empty and keeps the bytes (SourceFile.data)
            for extract_source to read elsewhere.
    """
    data = _read_bytes(seeds_dir, path, max_file_mb, root)
    if isinstance(data, SkippedFile):
        return data
    source, suffix = path.relative_to(seeds_dir).as_posix(), path.suffix.lower()
    sha256 = hashlib.sha256(data).hexdigest()
    if already_read and sha256 in already_read:
        return duplicate(source, sha256, already_read[sha256])
    if indexed and indexed.get(source) == sha256:
        # Parsing a PDF can take a second; a thousand unchanged ones should not delay adding one.
        return SourceFile(source, sha256, "", suffix.lstrip("."), reused=True)
    if not extract:
        return SourceFile(source, sha256, "", suffix.lstrip("."), data=data)
    return extract_source(source, sha256, suffix, data)


def duplicate(source: str, sha256: str, first: str) -> SkippedFile:
    """Why `source` is skipped: it has the same bytes as `first`, read before it."""
    return SkippedFile(source, f"same content as {first} (indexed once, cited as that file)", sha256, first)


def extract_source(source: str, sha256: str, suffix: str, data: bytes) -> SourceFile | SkippedFile:
    """The text a file's bytes are indexed from, or why they cannot be: the same wherever it runs.

    `suffix` is the file's, lower case with its dot (".pdf").
    """
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


def read_sources(
    seeds_dir: Path,
    max_file_mb: float = DEFAULT_MAX_FILE_MB,
    indexed: Mapping[str, str] | None = None,
    extract: bool = True,
) -> tuple[list[SourceFile], list[SkippedFile]]:
    """Every supported seed file, split into the readable ones and the skipped ones.

    Files with the same bytes are read once, under the first path in sorted
    order; the others are skipped as its duplicates, so no quote is repeated
    under two names.

    Args:
        max_file_mb: files larger than this (in MiB) are skipped without being read.
        indexed: sha256 by source of a live index's sources; files it holds unchanged are hashed, not extracted.
        extract: False hashes every file and keeps the bytes of those to extract
            (SourceFile.data) for a cluster to read; a duplicate is then judged
            as if the file it repeats were readable (qa/cluster/ray_build.py
            settles the case where it is not).
    """
    readable: list[SourceFile] = []
    skipped: list[SkippedFile] = []
    already_read: dict[str, str] = {}
    root = seeds_dir.resolve()
    for path in discover(seeds_dir):
        result = read_source(seeds_dir, path, max_file_mb, already_read, root, indexed, extract)
        if isinstance(result, SkippedFile):
            logger.warning("skipping %s: %s", result.source, result.reason)
            skipped.append(result)
        else:
            readable.append(result)
            already_read[result.sha256] = result.source
    return readable, skipped
