"""Hostile questions at every door: qa.answer, qa.retrieve, `python -m qa ask` and the chat's respond().

Each question is either answered, with every quote an exact slice of its
source, or refused with BadQuestionError and a message saying why; never
any other exception, and nothing that cannot be sent on as UTF-8 JSON.
"""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
from commands import Captured, assert_one_line_error, run
from conftest import HOSTILE_QUESTIONS
from markup import assert_no_markup_from_text

import qa
from qa.reader.index import Index
from qa.records import Hit, Quote
from qa.render.html import render_error
from qa.web import chat

CASES = [pytest.param(question, refusal, id=name) for name, (question, refusal) in HOSTILE_QUESTIONS.items()]


def assert_exact(record: Quote | Hit, index: Index) -> None:
    assert index.source_text(record.source)[record.start : record.end] == record.text


def assert_sendable(data: Any) -> None:
    """Encodes as UTF-8 JSON, as the command line and Gradio must."""
    json.dumps(data, ensure_ascii=False).encode("utf-8")


@pytest.fixture
def quote_always(monkeypatch: pytest.MonkeyPatch) -> None:
    """Threshold 0: an answered question always carries quotes, so their offsets get checked."""
    monkeypatch.setenv("QA_MIN_CONFIDENCE", "0")
    qa.reload_settings()


@pytest.mark.parametrize(("question", "refusal"), CASES)
def test_library_answers_exactly_or_refuses(
    seed_index: Index, quote_always: None, question: str, refusal: str | None
) -> None:
    if refusal is not None:
        for ask in (qa.answer, qa.retrieve):
            with pytest.raises(qa.BadQuestionError, match="^" + re.escape(refusal)):
                ask(question, index=seed_index)
        return
    answer = qa.answer(question, index=seed_index)
    assert answer.answered and answer.quotes and answer.question == question
    for record in (*answer.quotes, *answer.related):
        assert_exact(record, seed_index)
    assert_sendable(answer.to_dict())
    hits = qa.retrieve(question, k=5, index=seed_index)
    assert 1 <= len(hits) <= 5
    for hit in hits:
        assert_exact(hit, seed_index)


@pytest.mark.parametrize(("question", "refusal"), CASES)
def test_command_line_answers_or_gives_a_one_line_error(
    capsys: Captured, seed_index: Index, quote_always: None, question: str, refusal: str | None
) -> None:
    code, out, err = run(capsys, "ask", question, "--index", str(seed_index.path.parent), "--json")
    if refusal is not None:
        assert code == 1 and out == ""
        assert_one_line_error(err, refusal)
        return
    assert code == 0, err
    assert json.loads(out)["question"] == question


@pytest.mark.parametrize(("question", "refusal"), CASES)
def test_web_chat_shows_an_answer_or_the_error_as_text(
    seed_index: Index, monkeypatch: pytest.MonkeyPatch, question: str, refusal: str | None
) -> None:
    monkeypatch.setenv("QA_INDEX", str(seed_index.path.parent))
    qa.reload_settings()
    cleared, history, _ = chat.respond(question, [], False)
    assert cleared == ""
    asked, reply = history
    assert (asked["role"], reply["role"]) == ("user", "assistant")
    if refusal is not None:
        assert reply["content"].startswith(render_error(refusal).removesuffix("</p>"))
    else:
        assert reply["content"].startswith('<div class="qa-answer">')
    for message in history:
        assert "Traceback" not in message["content"]
        assert_no_markup_from_text(message["content"])
    assert_sendable(history)

