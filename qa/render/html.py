"""An Answer as HTML for the web chat: quotes, numbered sources, highlighted context.

Every piece of source text, question text and error text passes through
`html.escape` before it is placed in the markup built here, so a seed holding
`<script>` or an `onerror=` attribute shows as text. The chat displays this HTML
with markdown rendering off, so `*`, `_`, backticks or `[x](javascript:...)` in
a source are never reinterpreted either.
"""

from __future__ import annotations

from collections.abc import Sequence
from html import escape
from pathlib import Path

from qa.errors import QAError
from qa.quotes import NOT_FOUND, UNSURE
from qa.reader.index import Index, describe_stale
from qa.records import Answer, Hit, Quote, UploadOutcome

# What a quote and a related hit share: a span of a source, its paragraph and its ranks.
Cited = Quote | Hit


def highlight(item: Cited) -> str:
    """The paragraph, escaped, with the cited span wrapped in <mark>."""
    # Offsets are into the source; the context starts at context_start in it.
    start = max(0, item.start - item.context_start)
    end = min(len(item.context), item.end - item.context_start)
    before, span, after = item.context[:start], item.context[start:end], item.context[end:]
    return f"{escape(before)}<mark>{escape(span)}</mark>{escape(after)}"


def _rank(rank: int | None) -> str:
    return "-" if rank is None else str(rank)


def source_line(item: Cited, show_scores: bool) -> str:
    """File, section, paragraph, line and score of a cited span, escaped; ranks when asked."""
    parts = [f"<code>{escape(item.source)}</code>"]
    if item.section:
        parts.append(f"§ {escape(item.section)}")
    parts.append(f"paragraph {item.paragraph}, line {item.line}, chars {item.start}-{item.end}")
    parts.append(f"score {item.score:.3f}")
    if show_scores:
        parts.append(
            f'<span class="qa-ranks">dense rank {_rank(item.dense_rank)}, '
            f"BM25 rank {_rank(item.lexical_rank)}, final score {item.score:.4f}</span>"
        )
    return " · ".join(parts)


def _source_item(number: int, item: Cited, show_scores: bool) -> str:
    return (
        f"<li><details><summary>[{number}] {source_line(item, show_scores)}</summary>"
        f'<p class="qa-context">{highlight(item)}</p></details></li>'
    )


def _quotes(quotes: list[Quote]) -> str:
    return "".join(
        f'<blockquote class="qa-quote">{escape(quote.text)} <sup class="qa-cite">[{number}]</sup></blockquote>'
        for number, quote in enumerate(quotes, start=1)
    )


def _notes(answer: Answer) -> str:
    return "".join(f'<p class="qa-note">Note: {escape(note)}</p>' for note in answer.notes)


def _source_list(items: Sequence[Cited], show_scores: bool) -> str:
    rows = "".join(_source_item(number, item, show_scores) for number, item in enumerate(items, start=1))
    return f'<ol class="qa-sources">{rows}</ol>'


def render_answer(answer: Answer, show_scores: bool = False) -> str:
    """The answer as one HTML fragment: quotes and sources, the closest sentence when unsure, or "not found"."""
    if answer.answered:
        body = _quotes(answer.quotes) + "<p><strong>Sources</strong></p>" + _source_list(answer.quotes, show_scores)
    elif answer.status == "unsure" and answer.related:
        closest = answer.related[0]
        body = f'<p class="qa-unsure"><strong>{escape(UNSURE)}</strong></p>'
        body += f'<blockquote class="qa-closest">{escape(closest.text)}</blockquote>'
        body += "<p><strong>Sources</strong> (the first is the closest sentence)</p>"
        body += _source_list(answer.related, show_scores)
    else:
        body = f'<p class="qa-not-found"><strong>{escape(NOT_FOUND)}</strong></p>'
        if answer.related:
            body += "<p><strong>Related</strong> (closest passages, not an answer)</p>"
            body += _source_list(answer.related, show_scores)
    confidence = f'<p class="qa-confidence">Confidence that the sources answer this: {answer.confidence:.2f}</p>'
    return f'<div class="qa-answer">{body}{confidence}{_notes(answer)}</div>'


def render_copy(markdown: str) -> str:
    """A "Copy as Markdown" button and the Markdown it copies (hidden; escaped; the page's script copies it)."""
    return (
        '<div class="qa-copyable"><button type="button" class="qa-copy">Copy as Markdown</button>'
        f'<pre class="qa-markdown" hidden>{escape(markdown)}</pre></div>'
    )


def render_error(message: str) -> str:
    """A library error as a plain chat message."""
    return f'<p class="qa-error">{escape(message)}</p>'


def render_question(question: str) -> str:
    """The user's question as it should appear in the chat: text, never markup."""
    # A lone surrogate is not UTF-8 and could not be sent to the browser; U+FFFD stands in.
    return escape("".join("\ufffd" if "\ud800" <= ch <= "\udfff" else ch for ch in question))


def _plural(count: int, word: str) -> str:
    return f"{count:,} {word}{'' if count == 1 else 's'}"


def render_header(index: Index, seeds_dir: Path) -> str:
    """What is indexed (documents, sentences, model, build time), and a warning when stale."""
    manifest = index.manifest
    counts = manifest.counts
    line = (
        f"Indexed: {_plural(counts.sources, 'document')}, {_plural(counts.sentences, 'sentence')} · "
        f"model {escape(manifest.model.name)} · built {escape(manifest.built_at)}"
    )
    try:
        detail = describe_stale(index.stale(seeds_dir))
    except QAError as error:
        detail = str(error)
    warning = ""
    if detail:
        warning = (
            f'<p class="qa-stale">⚠ The index is stale against <code>{escape(str(seeds_dir))}</code> '
            f"({escape(detail)}); rebuild it to answer from the current files.</p>"
        )
    return f'<div class="qa-header"><p>{line}</p>{warning}</div>'


def render_uploads(outcomes: list[UploadOutcome]) -> str:
    """One line per uploaded file: saved, or refused and why."""
    if not outcomes:
        return '<p class="qa-upload">No files were chosen (or they are still uploading: wait until listed).</p>'
    rows = "".join(
        f'<li class="qa-saved">Saved <code>{escape(o.name)}</code>; rebuild the index to answer from it.</li>'
        if o.saved
        else f'<li class="qa-refused">Refused <code>{escape(o.name)}</code>: {escape(o.reason)}</li>'
        for o in outcomes
    )
    return f'<ul class="qa-upload">{rows}</ul>'


def render_status(message: str, ok: bool = True) -> str:
    """A one-line status of the index panel (rebuild finished, or why it failed)."""
    return f'<p class="{"qa-ok" if ok else "qa-error"}">{escape(message)}</p>'
