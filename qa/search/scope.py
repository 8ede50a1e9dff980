"""Which indexed sources a question may be answered from: paths or globs, as citations name sources."""

from __future__ import annotations

from collections.abc import Iterable
from fnmatch import fnmatchcase

from qa.errors import SourceNotFoundError

# How many indexed sources an error lists, so that a message about a large
# corpus stays one readable line.
_LISTED_SOURCES = 5


def resolve_sources(indexed: Iterable[str], patterns: Iterable[str] | str | None) -> frozenset[str] | None:
    """The indexed sources the patterns match, or None for no restriction (patterns None or empty).

    Each pattern is a source path as citations show it (`notes/a.md`) or a
    glob over those paths (`*.pdf`, `reports/**`), matched case-sensitively
    as sources are; `*` also crosses `/`.

    Raises:
        SourceNotFoundError: a pattern is not text or matches no indexed source (the message names it).
    """
    if patterns is None:
        return None
    if isinstance(patterns, str):
        patterns = [patterns]
    chosen = list(patterns)
    if not chosen:
        return None
    names = sorted(indexed)
    matched: set[str] = set()
    for pattern in chosen:
        if not isinstance(pattern, str) or not pattern.strip():
            raise SourceNotFoundError(f"a source must be a path or a glob over source paths, not {pattern!r}")
        found = [name for name in names if name == pattern or fnmatchcase(name, pattern)]
        if not found:
            raise SourceNotFoundError(_no_match(pattern, names))
        matched.update(found)
    return frozenset(matched)


def _no_match(pattern: str, names: list[str]) -> str:
    shown = ", ".join(names[:_LISTED_SOURCES]) + (
        f" and {len(names) - _LISTED_SOURCES} more" if len(names) > _LISTED_SOURCES else ""
    )
    return (
        f"no indexed source matches {pattern!r}; give a path as citations show it or a glob such as '*.pdf' "
        f"(indexed: {shown or 'nothing'})"
    )
