"""Answers and the header as escaped HTML: quotes, sources, highlighted context, hostile text shown as text."""

from __future__ import annotations

import html
from dataclasses import replace
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st
from markup import assert_no_markup_from_text, text_outside_tags

import qa
from qa.embed.encoder import ModelFingerprint
from qa.errors import QAError
from qa.reader.index import Index
from qa.records import Answer, Citation, Hit, Quote, UploadOutcome
from qa.render.html import (
    highlight,
    render_answer,
    render_error,
    render_header,
    render_question,
    render_status,
    render_uploads,
)
from qa.storage.manifest import SCHEMA_VERSION, Counts, Manifest

HOSTILE = '<img src=x onerror=alert(1)> <script>alert(2)</script> *bold* _it_ `code` [x](javascript:alert(3))'


def _quote(context: str, start: int, end: int, offset: int = 100, section: str | None = "Intro") -> Quote:
    return Quote(
        text=context[start:end], location=Citation("doc.txt", offset + start, offset + end, section, 2, 3), score=0.5,
        context=context, context_start=offset, dense_rank=1, lexical_rank=4,
    )


def _hit(context: str, source: str = "doc.txt") -> Hit:
    return Hit(
        id="h", text=context, location=Citation(source, 0, len(context), None, 1, 1),
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
    quote = _quote(text, cut % len(text), len(text), section=section)
    quote = replace(quote, location=replace(quote.location, source=source))
    hit = _hit(text, source=source)
    hit = replace(hit, location=replace(hit.location, section=section))
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

    def __init__(self, manifest: Manifest, stale: dict[str, list[str]] | QAError) -> None:
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
    manifest = Manifest(
        schema_version=SCHEMA_VERSION, model=ModelFingerprint(model, 384, "0" * 64), built_at=built_at,
        counts=Counts(sources=2, passages=3, sentences=9), sources={},
    )
    stale: dict[str, list[str]] | QAError = {"added": names, "changed": names, "removed": []}
    if stale_fails:
        stale = QAError(" ".join(names))
    header = render_header(_IndexStandIn(manifest, stale), Path(seeds_dir))  # type: ignore[arg-type]
    assert_shown_as_text(header, model, built_at, str(Path(seeds_dir)), *names)


def test_header_says_what_is_indexed_and_warns_when_stale(seed_index: Index, seeds_copy: Path) -> None:
    header = render_header(seed_index, seeds_copy)
    counts = seed_index.manifest.counts
    assert f"{counts.sentences} sentences" in header and "all-MiniLM-L6-v2" in header
    assert seed_index.manifest.built_at in header and "stale" not in header
    (seeds_copy / "new <b>.md").write_text("A new document.\n", encoding="utf-8")
    stale = render_header(seed_index, seeds_copy)
    assert "stale" in stale and "added: new &lt;b&gt;.md" in stale


def test_upload_outcomes_are_escaped() -> None:
    markup = render_uploads([UploadOutcome("<x>.txt", True), UploadOutcome("a.exe", False, "<bad>")])
    assert "&lt;x&gt;.txt" in markup and "&lt;bad&gt;" in markup and "<x>" not in markup


def test_no_uploaded_files_says_so() -> None:
    assert "No files were chosen" in render_uploads([])


def test_unsure_shows_the_closest_sentence_as_maybe_not_an_answer() -> None:
    markup = render_answer(Answer("q", False, 0.3, [], [_hit("Closest <b>sentence</b>."), _hit("Other.")], status="unsure"))
    assert '<p class="qa-unsure"><strong>The closest sentence, which may not answer it:</strong></p>' in markup
    assert '<blockquote class="qa-closest">Closest &lt;b&gt;sentence&lt;/b&gt;.</blockquote>' in markup
    assert "Not found in the sources." not in markup and markup.count("<li><details>") == 2
