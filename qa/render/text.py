"""An answer as plain text for a terminal: quotes with citations, or related passages."""

from __future__ import annotations

from qa.quotes import NOT_FOUND, UNSURE
from qa.records import Answer, Hit


def format_text(answer: Answer) -> str:
    """The answer as plain text for a terminal: quotes with citations, the closest sentence, or related passages."""
    lines = []
    if answer.answered:
        for number, quote in enumerate(answer.quotes, start=1):
            lines.append(f"[{number}] {_quoted(quote.text)}")
            lines.append(f"    {quote.citation}  (score {quote.score:.3f})")
    elif answer.status == "unsure" and answer.related:
        closest, *others = answer.related
        lines.append(UNSURE)
        lines.append(f"  {_quoted(closest.text)}")
        lines.append(f"    {closest.citation}  (score {closest.score:.3f})")
        lines.extend(_passages("Other passages:", others))
    else:
        lines.append(NOT_FOUND)
        lines.extend(_passages("Closest passages:", answer.related))
    lines.append(f"Confidence that the sources answer this: {answer.confidence:.2f}")
    lines.extend(f"Note: {note}" for note in answer.notes)
    return "\n".join(lines)


def _passages(title: str, hits: list[Hit]) -> list[str]:
    lines = [title] if hits else []
    for hit in hits:
        lines.append(f"  - {_quoted(hit.text)}")
        lines.append(f"    {hit.citation}  (score {hit.score:.3f})")
    return lines


def _quoted(text: str) -> str:
    """The sentence between typographic quote marks, so that one opening with a straight quote reads cleanly."""
    return f"“{text}”"
