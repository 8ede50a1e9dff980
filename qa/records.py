"""Typed records passed between pipeline stages.

Every record that points into a source carries `source` (the path relative to
the seeds folder, with forward slashes) and `start`/`end`, character offsets
into the text the source was indexed from (`Index.source_text(source)`: the
file itself for .txt and .md, the extracted text for PDF, HTML and DOCX), so
that `text == source_text[start:end]` always holds. `page` is the 1-based PDF
page a record starts on, None for formats without pages.
"""

from __future__ import annotations

import hashlib
from dataclasses import asdict, dataclass, field
from typing import Any


def content_id(*parts: str) -> str:
    """A stable 16-hex-digit id from the given strings (sha256, NUL-separated)."""
    digest = hashlib.sha256("\0".join(parts).encode("utf-8")).hexdigest()
    return digest[:16]


class _Record:
    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready dict of the record."""
        return asdict(self)  # type: ignore[call-overload]


@dataclass(frozen=True)
class Passage(_Record):
    """A paragraph of a source document."""

    id: str
    source: str
    paragraph: int  # 1-based paragraph number within the document
    line: int  # 1-based line number where the paragraph starts
    section: str | None
    start: int
    end: int
    text: str
    page: int | None = None


@dataclass(frozen=True)
class Sentence(_Record):
    """A sentence inside a passage; the unit that is embedded and quoted."""

    id: str
    passage_id: str
    source: str
    paragraph: int
    line: int
    section: str | None
    start: int
    end: int
    text: str
    page: int | None = None

    @property
    def citation(self) -> Citation:
        """Where the sentence sits, as hits and quotes cite it."""
        return Citation(self.source, self.start, self.end, self.section, self.paragraph, self.line, self.page)


@dataclass(frozen=True)
class Document(_Record):
    """One ingested source file and what it was split into."""

    source: str
    sha256: str
    text: str
    passages: tuple[Passage, ...]
    sentences: tuple[Sentence, ...]
    format: str = "txt"  # "txt", "md", "pdf", "html" or "docx"
    title: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "sha256": self.sha256,
            "format": self.format,
            "title": self.title,
            "passages": len(self.passages),
            "sentences": len(self.sentences),
        }


def format_citation(
    source: str, section: str | None, paragraph: int, line: int, start: int, end: int, page: int | None = None
) -> str:
    """A readable citation a person can check against the file (line and chars count in the indexed text)."""
    where = f"{source}"
    if section:
        where += f' § "{section}"'
    if page is not None:
        where += f", page {page}"
    return f"{where}, paragraph {paragraph}, line {line}, chars {start}-{end}"


@dataclass(frozen=True)
class Citation(_Record):
    """Where a quoted or retrieved span sits: its source, section, page, paragraph, line and characters."""

    source: str
    start: int
    end: int
    section: str | None
    paragraph: int
    line: int
    page: int | None = None

    def __str__(self) -> str:
        return format_citation(self.source, self.section, self.paragraph, self.line, self.start, self.end, self.page)


class _Cited(_Record):
    """A record that points into a source through its `location`, and can say where."""

    location: Citation

    @property
    def source(self) -> str:
        return self.location.source

    @property
    def start(self) -> int:
        return self.location.start

    @property
    def end(self) -> int:
        return self.location.end

    @property
    def section(self) -> str | None:
        return self.location.section

    @property
    def paragraph(self) -> int:
        return self.location.paragraph

    @property
    def line(self) -> int:
        return self.location.line

    @property
    def page(self) -> int | None:
        return self.location.page

    @property
    def citation(self) -> str:
        """The citation as one readable line."""
        return str(self.location)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: the location's fields inline, as before the Citation record, plus the readable citation."""
        data: dict[str, Any] = {}
        for name, value in asdict(self).items():  # type: ignore[call-overload]
            if name == "location":
                data.update(value)
            else:
                data[name] = value
        return {**data, "citation": self.citation}


@dataclass(frozen=True)
class Hit(_Cited):
    """A retrieved sentence with the evidence behind its rank.

    Ranks are 1-based; None means that retriever did not return the sentence
    among its candidates.
    """

    id: str
    text: str
    location: Citation
    score: float
    dense_rank: int | None
    lexical_rank: int | None
    passage_rank: int | None
    dense_score: float
    lexical_score: float
    context: str  # the whole paragraph the sentence sits in
    context_start: int  # offset of `context` in the source


@dataclass(frozen=True)
class Quote(_Cited):
    """Verbatim text from one source: one sentence or adjacent sentences of a paragraph."""

    text: str
    location: Citation
    score: float
    context: str
    context_start: int
    sentence_ids: tuple[str, ...] = ()
    dense_rank: int | None = None
    lexical_rank: int | None = None


@dataclass(frozen=True)
class UploadOutcome(_Record):
    """What happened to one uploaded file: saved under `name`, or refused with `reason`."""

    name: str
    saved: bool
    reason: str = ""


ANSWER_STATUSES = ("answered", "unsure", "not_found")


@dataclass(frozen=True)
class Answer(_Record):
    """The reply to a question: quotes when the sources answer it, else related hits.

    `status` is "answered" (quotes, confident), "unsure" (no quotes; the first
    related hit is the closest sentence, which may not answer it) or
    "not_found". Only "answered" is an answer: `answered` is True for it alone.
    """

    question: str
    answered: bool
    confidence: float
    quotes: list[Quote] = field(default_factory=list)
    related: list[Hit] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    build: str = ""  # the index build folder every quote and hit came from
    status: str = ""  # one of ANSWER_STATUSES; left empty, it follows `answered`

    def __post_init__(self) -> None:
        if not self.status:
            object.__setattr__(self, "status", "answered" if self.answered else "not_found")
        if self.status not in ANSWER_STATUSES or (self.status == "answered") != self.answered:
            raise ValueError(f"status {self.status!r} does not go with answered={self.answered}")

    def to_dict(self) -> dict[str, Any]:
        return {
            "question": self.question,
            "answered": self.answered,
            "status": self.status,
            "confidence": self.confidence,
            "quotes": [quote.to_dict() for quote in self.quotes],
            "related": [hit.to_dict() for hit in self.related],
            "notes": list(self.notes),
            "build": self.build,
        }


@dataclass(frozen=True)
class Turn(_Record):
    """An earlier turn of a conversation: the question asked and the answer it got (None when unknown).

    History only shapes how a follow-up is searched (qa/search/followup.py);
    the follow-up's answer is still quoted from the sources.
    """

    question: str
    answer: Answer | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"question": self.question, "answer": self.answer.to_dict() if self.answer else None}


@dataclass(frozen=True)
class SkippedFile:
    """A seed file that was not indexed, and why; sha256 of its bytes when they could be read.

    `duplicate_of` names the file with the same bytes that is indexed in its place.
    """

    source: str
    reason: str
    sha256: str | None = None
    duplicate_of: str | None = None


@dataclass
class BuildReport:
    """What a build did, per source."""

    added: list[str] = field(default_factory=list)
    changed: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    skipped: list[SkippedFile] = field(default_factory=list)
    embedded_sentences: int = 0
    embedded_passages: int = 0
    full: bool = False
