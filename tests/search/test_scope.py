"""Scope: a question restricted to some sources, by path or glob, inside candidate generation."""

from __future__ import annotations

import pytest

import qa
from qa.search.scope import resolve_sources

INDEXED = ["a/notes.md", "b.txt", "report.pdf"]


def test_patterns_resolve_to_indexed_sources() -> None:
    assert resolve_sources(INDEXED, None) is None and resolve_sources(INDEXED, []) is None
    assert resolve_sources(INDEXED, "b.txt") == {"b.txt"}
    assert resolve_sources(INDEXED, ["*.md", "report.pdf"]) == {"a/notes.md", "report.pdf"}
    assert resolve_sources(INDEXED, ["*"]) == set(INDEXED)


@pytest.mark.parametrize("pattern", ["*.docx", "B.txt", "", 3])
def test_a_pattern_matching_nothing_is_named_in_the_error(pattern: object) -> None:
    with pytest.raises(qa.SourceNotFoundError) as error:
        resolve_sources(INDEXED, [pattern])  # type: ignore[list-item]
    assert repr(pattern) in str(error.value)


def test_answers_come_only_from_the_sources_picked(built: tuple, small_seeds) -> None:  # type: ignore[no-untyped-def]
    _, _, index = built
    sources = sorted(index.sources)
    assert len(sources) >= 2
    for source in sources:
        hits = qa.retrieve("What is this about?", k=20, index=index, sources=[source])
        assert hits and {hit.source for hit in hits} == {source}
        answer = qa.answer("What is this about?", k=5, index=index, sources=source)
        assert {q.source for q in answer.quotes} | {h.source for h in answer.related} == {source}
    with pytest.raises(qa.SourceNotFoundError, match="nothing-here"):
        qa.answer("What is this about?", index=index, sources=["nothing-here*"])
