"""An answer as plain text for a terminal: quotes with citations, or related passages."""

from __future__ import annotations

from qa.quotes import NOT_FOUND
from qa.records import Answer


def format_text(answer: Answer) -> str:
    """The answer as plain text for a terminal: quotes with citations, or related passages."""
    lines = []
    if answer.answered:
        for number, quote in enumerate(answer.quotes, start=1):
            lines.append(f'[{number}] "{quote.text}"')
            lines.append(f"    {quote.citation}  (score {quote.score:.3f})")
    else:
        lines.append(NOT_FOUND)
        if answer.related:
            lines.append("Closest passages:")
            for hit in answer.related:
                lines.append(f'  - "{hit.text}"')
                lines.append(f"    {hit.citation}  (score {hit.score:.3f})")
    lines.append(f"Confidence that the sources answer this: {answer.confidence:.2f}")
    lines.extend(f"Note: {note}" for note in answer.notes)
    return "\n".join(lines)
