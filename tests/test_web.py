"""The web chat's pieces that need no server: HTML rendering, upload saving, the live index."""

from __future__ import annotations

import html
import re
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from markup import assert_no_markup_from_text, text_outside_tags

import qa
from qa import ingest
from qa.errors import QAError
from qa.index import Index
from qa.render import (
    highlight,
    render_answer,
    render_error,
    render_header,
    render_question,
    render_status,
    render_uploads,
)
from qa.schema import Answer, Hit, Quote
from qa.uploads import (
    UploadOutcome,
    UploadRefused,
    check_name,
    save_upload,
    save_uploads,
)

HOSTILE = '<img src=x onerror=alert(1)> <script>alert(2)</script> *bold* _it_ `code` [x](javascript:alert(3))'


def _quote(context: str, start: int, end: int, offset: int = 100, section: str | None = "Intro") -> Quote:
    return Quote(
        text=context[start:end], source="doc.txt", start=offset + start, end=offset + end, score=0.5,
        section=section, paragraph=2, line=3, context=context, context_start=offset, dense_rank=1, lexical_rank=4,
    )


def _hit(context: str, source: str = "doc.txt") -> Hit:
    return Hit(
        id="h", text=context, source=source, start=0, end=len(context), section=None, paragraph=1, line=1,
        score=0.1, dense_rank=None, lexical_rank=2, passage_rank=None, dense_score=0.0, lexical_score=0.0,
        context=context, context_start=0,
    )


def test_seed_answer_renders_quote_citation_and_highlight(seed_index: Index) -> None:
    result = qa.answer("Who chairs the Senate Judiciary Committee?", index=seed_index)
    markup = render_answer(result)
    first = result.quotes[0]
    assert f'<blockquote class="qa-quote">{html.escape(first.text)} <sup class="qa-cite">[1]</sup>' in markup
    assert html.escape(first.source) in markup and f"paragraph {first.paragraph}, line {first.line}" in markup
    assert f"<mark>{html.escape(first.text)}</mark>" in markup
    assert "<details>" in markup and "dense rank" not in markup


def test_show_scores_adds_ranks_and_final_score() -> None:
    markup = render_answer(Answer("q", True, 0.9, [_quote("One. Two. Three.", 5, 9)]), show_scores=True)
    assert "dense rank 1, BM25 rank 4, final score 0.5000" in markup


def test_not_found_lists_related_passages() -> None:
    markup = render_answer(Answer("q", False, 0.01, [], [_hit("Closest sentence.")]))
    assert "Not found in the sources." in markup and "Related" in markup and "Closest sentence." in markup
    assert "dense rank -, BM25 rank 2" in render_answer(Answer("q", False, 0.01, [], [_hit("x")]), show_scores=True)


def test_highlight_marks_exactly_the_quoted_span() -> None:
    context = "Before <b>. The quote & more. After."
    quote = _quote(context, 12, 29)
    assert highlight(quote) == "Before &lt;b&gt;. <mark>The quote &amp; more.</mark> After."


def test_hostile_source_text_is_escaped_everywhere() -> None:
    quote = _quote(HOSTILE, 0, 30, section=HOSTILE)
    markup = render_answer(Answer(HOSTILE, True, 0.9, [quote], [_hit(HOSTILE, source=HOSTILE)], [HOSTILE]), True)
    markup += render_error(HOSTILE) + render_question(HOSTILE)
    assert "<img" not in markup and "<script" not in markup
    assert "<" not in text_outside_tags(markup)


# Any text (every category but surrogates, which render_question replaces),
# with markup, entities and markdown mixed in more often than chance would.
_MARKUP_TEXT = st.lists(
    st.one_of(
        st.characters(blacklist_categories=("Cs",)),
        st.sampled_from(
            ["<", ">", "&", '"', "'", "</p>", "<script>alert(1)</script>", "<img src=x onerror=alert(1)>",
             "&lt;b&gt;", "&amp;", "*stars*", "[x](javascript:alert(1))", "`code`", "\n", "\x00"]
        ),
    ),
    min_size=1,
    max_size=40,
).map("".join)


def assert_shown_as_text(markup: str, *fields: str) -> None:
    """No markup came from the fields, and each one reads back verbatim from the page's text."""
    assert_no_markup_from_text(markup)
    shown = html.unescape(text_outside_tags(markup))
    for field in fields:
        assert field in shown, (field, shown)


@settings(max_examples=300, deadline=None)
@given(
    text=_MARKUP_TEXT,
    cut=st.integers(min_value=0),
    section=st.none() | _MARKUP_TEXT,
    source=_MARKUP_TEXT,
    question=_MARKUP_TEXT,
    answered=st.booleans(),
    show_scores=st.booleans(),
)
def test_rendered_text_never_carries_unescaped_markup(
    text: str, cut: int, section: str | None, source: str, question: str, answered: bool, show_scores: bool
) -> None:
    """Quote text, context, section, source name, question and notes, in every rendering."""
    quote = replace(_quote(text, cut % len(text), len(text), section=section), source=source)
    hit = replace(_hit(text, source=source), section=section)
    answer = Answer(question, answered, 0.5, [quote] if answered else [], [hit], [question])
    shown = [text, source, question, *([section] if section else [])]
    assert_shown_as_text(render_answer(answer, show_scores), *shown)
    assert_shown_as_text(render_question(question), question)
    assert_shown_as_text(render_error(text), text)
    assert_shown_as_text(render_status(text, ok=answered), text)
    outcomes = [UploadOutcome(source, saved=False, reason=text), UploadOutcome(question, saved=True)]
    assert_shown_as_text(render_uploads(outcomes), source, text, question)


class _IndexStandIn:
    """What render_header reads from an index: the manifest, and staleness against a folder."""

    def __init__(self, manifest: dict[str, Any], stale: dict[str, list[str]] | QAError) -> None:
        self.manifest, self._stale = manifest, stale

    def stale(self, seeds_dir: Path) -> dict[str, list[str]]:
        if isinstance(self._stale, QAError):
            raise self._stale
        return self._stale


@settings(max_examples=100, deadline=None)
@given(
    model=_MARKUP_TEXT,
    built_at=_MARKUP_TEXT,
    seeds_dir=_MARKUP_TEXT.filter(lambda name: "\x00" not in name),
    names=st.lists(_MARKUP_TEXT, min_size=1, max_size=3),
    stale_fails=st.booleans(),
)
def test_header_never_carries_unescaped_markup(
    model: str, built_at: str, seeds_dir: str, names: list[str], stale_fails: bool
) -> None:
    manifest = {"counts": {"sources": 2, "sentences": 9}, "model": {"name": model}, "built_at": built_at}
    stale: dict[str, list[str]] | QAError = {"added": names, "changed": names, "removed": []}
    if stale_fails:
        stale = QAError(" ".join(names))
    header = render_header(_IndexStandIn(manifest, stale), Path(seeds_dir))  # type: ignore[arg-type]
    assert_shown_as_text(header, model, built_at, str(Path(seeds_dir)), *names)


def test_header_says_what_is_indexed_and_warns_when_stale(seed_index: Index, seeds_copy: Path) -> None:
    header = render_header(seed_index, seeds_copy)
    counts = seed_index.manifest["counts"]
    assert f"{counts['sentences']} sentences" in header and "all-MiniLM-L6-v2" in header
    assert seed_index.manifest["built_at"] in header and "stale" not in header
    (seeds_copy / "new <b>.md").write_text("A new document.\n", encoding="utf-8")
    stale = render_header(seed_index, seeds_copy)
    assert "stale" in stale and "added: new &lt;b&gt;.md" in stale


def test_upload_outcomes_are_escaped() -> None:
    markup = render_uploads([UploadOutcome("<x>.txt", True), UploadOutcome("a.exe", False, "<bad>")])
    assert "&lt;x&gt;.txt" in markup and "&lt;bad&gt;" in markup and "<x>" not in markup


def test_no_uploaded_files_says_so() -> None:
    assert "No files were chosen" in render_uploads([])


# Uploads


def _snapshot(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture
def upload_area(tmp_path: Path) -> tuple[Path, Path]:
    """A seeds folder inside tmp_path, a file to upload beside it, and a sibling that must never change."""
    seeds = tmp_path / "area" / "seeds"
    seeds.mkdir(parents=True)
    (seeds / "existing.txt").write_text("Already here.\n", encoding="utf-8")
    (tmp_path / "area" / "evil.txt").write_text("untouched\n", encoding="utf-8")
    uploaded = tmp_path / "incoming"
    uploaded.write_text("An uploaded document about owls.\n", encoding="utf-8")
    return seeds, uploaded


def test_upload_saves_a_supported_file(upload_area: tuple[Path, Path]) -> None:
    seeds, uploaded = upload_area
    saved = save_upload(seeds, "Owls (notes).txt", uploaded)
    assert saved == seeds / "Owls (notes).txt" and saved.read_bytes() == uploaded.read_bytes()
    assert sorted(p.name for p in seeds.iterdir()) == ["Owls (notes).txt", "existing.txt"]  # no temp file left


@pytest.mark.parametrize(
    ("name", "says"),
    [
        ("../evil.txt", "path"),
        ("..\\evil.txt", "path"),
        ("/etc/evil.txt", "path"),
        ("sub/evil.txt", "path"),
        ("..", "path"),
        (".hidden.txt", "not a safe file name"),
        ("evil.txt\n", "not a safe file name"),
        ("run.sh", "not a supported type"),
        ("notes.txt.exe", "not a supported type"),
        ("noextension", "not a supported type"),
        ("existing.txt", "already exists"),
    ],
)
def test_hostile_upload_names_are_refused(upload_area: tuple[Path, Path], name: str, says: str) -> None:
    seeds, uploaded = upload_area
    area = seeds.parent.parent
    before = _snapshot(area)
    with pytest.raises(UploadRefused, match=re.escape(says)):
        save_upload(seeds, name, uploaded)
    assert _snapshot(area) == before


def test_oversized_upload_is_refused(upload_area: tuple[Path, Path]) -> None:
    seeds, uploaded = upload_area
    before = _snapshot(seeds.parent.parent)
    with pytest.raises(UploadRefused, match="the limit is 10 bytes"):
        save_upload(seeds, "big.txt", uploaded, max_bytes=10)
    assert _snapshot(seeds.parent.parent) == before


def test_allowed_extensions_follow_ingest(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("report.pdf", "page.html", "page.htm", "memo.docx", "notes.md"):
        assert check_name(name) == name
    with pytest.raises(UploadRefused):
        check_name("report.odt")
    monkeypatch.setattr(ingest, "SUPPORTED_SUFFIXES", (*ingest.SUPPORTED_SUFFIXES, ".odt"))
    assert check_name("report.odt") == "report.odt"


def test_save_uploads_reports_each_file(upload_area: tuple[Path, Path]) -> None:
    seeds, uploaded = upload_area
    outcomes = save_uploads(seeds, [("a.md", uploaded), ("../b.md", uploaded), ("c.exe", uploaded)])
    assert [(o.name, o.saved) for o in outcomes] == [("a.md", True), ("../b.md", False), ("c.exe", False)]
    assert all(o.reason for o in outcomes[1:])
