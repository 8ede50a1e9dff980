"""The MCP server for real: `python app.py --mcp` on loopback, called by the `mcp` SDK as an agent would."""

from __future__ import annotations

import asyncio
import json
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import SEED_NAME, SEEDS

import qa
from qa.measure.served import App
from qa.web import settings as web_settings

pytest.importorskip("mcp")

SEED_QUESTION = "Who chairs the Senate Judiciary Committee?"


def test_mcp_is_off_by_default_and_on_by_flag_or_variable() -> None:
    assert not web_settings.parse_config([], {}).mcp
    assert web_settings.parse_config(["--mcp"], {}).mcp
    assert web_settings.parse_config([], {"QA_MCP": "1"}).mcp


@pytest.fixture(scope="module")
def mcp_server(tmp_path_factory: pytest.TempPathFactory, qa_cache: Path) -> Iterator[dict[str, Any]]:
    """`python app.py --mcp` on a free 127.0.0.1 port over a copy of the seeds plus a second document."""
    root = tmp_path_factory.mktemp("mcp")
    seeds = root / "seeds"
    shutil.copytree(SEEDS, seeds)
    (seeds / "bats.md").write_text("# Bats\n\nThe little brown bat eats mosquitoes at night.\n", encoding="utf-8")
    environment = {"QA_SEEDS": str(seeds), "QA_INDEX": str(root / "index"), "QA_CACHE": str(qa_cache)}
    running = App(["--mcp"], environment, root / "app.log", cwd=root)
    try:
        try:
            running.wait()
        except qa.QAError as error:
            pytest.fail(f"{error}:\n{(root / 'app.log').read_text()}")
        yield {"url": running.url, "seeds": seeds, "root": root}
    finally:
        running.stop()


async def _session_calls(url: str, calls: list[tuple[str, dict[str, Any]]]) -> tuple[list[Any], list[Any]]:
    from mcp import ClientSession
    from mcp.client import streamable_http

    # streamable_http_client is the newer name (mcp >= 1.2x); streamablehttp_client the older, deprecated one.
    connect = getattr(streamable_http, "streamable_http_client", None) or streamable_http.streamablehttp_client
    async with connect(url + "gradio_api/mcp/") as (read, write, _), ClientSession(read, write) as session:
        await session.initialize()
        tools = (await session.list_tools()).tools
        results = [await session.call_tool(name, arguments) for name, arguments in calls]
    return tools, results


def _payload(result: Any) -> Any:
    assert not result.isError, result
    return json.loads(result.content[0].text)


def test_an_mcp_client_lists_the_tools_and_gets_quotes_that_slice_their_sources(mcp_server: dict[str, Any]) -> None:
    calls = [
        ("answer", {"question": SEED_QUESTION, "k": 3}),
        ("retrieve", {"question": "What does the little brown bat eat?", "k": 2, "sources": ["*.md"]}),
        ("answer", {"question": "What does the bat eat?", "sources": ["no-such-*.pdf"]}),
    ]
    tools, results = asyncio.run(_session_calls(mcp_server["url"], calls))
    names = {tool.name for tool in tools}
    assert names == {"answer", "retrieve"}
    schema = next(tool for tool in tools if tool.name == "answer").inputSchema["properties"]
    assert {"question", "k", "sources", "history"} <= set(schema)
    answer = _payload(results[0])
    assert answer["answered"] and answer["quotes"]
    for quote in answer["quotes"]:
        text = (mcp_server["seeds"] / quote["source"]).read_text(encoding="utf-8")
        assert text[quote["start"] : quote["end"]] == quote["text"]
        assert quote["source"] == SEED_NAME and "paragraph" in quote["citation"]
    hits = _payload(results[1])
    assert hits and all(hit["source"] == "bats.md" for hit in hits)
    assert results[2].isError and "no-such-*.pdf" in results[2].content[0].text


def test_an_agent_passes_the_answer_it_got_back_as_history(mcp_server: dict[str, Any]) -> None:
    """The `answer` tool's JSON, given back as a history turn, makes the next question a follow-up to it."""
    first = _payload(
        asyncio.run(_session_calls(mcp_server["url"], [("answer", {"question": "Who is Derek Scissors?"})]))[1][0]
    )
    assert first["answered"]
    calls = [
        ("answer", {"question": "Where does he work?", "history": [first]}),
        ("answer", {"question": "Where does he work?", "history": [{"question": first["question"], "answer": first}]}),
    ]
    followed, as_turn = map(_payload, asyncio.run(_session_calls(mcp_server["url"], calls))[1])
    assert followed == as_turn  # read as the turn it stands for, its quotes included
    assert followed["notes"][-1].startswith("Read as a follow-up to “Who is Derek Scissors?”")
    top = (followed["quotes"] or followed["related"])[0]
    assert "American Enterprise Institute" in top["text"]
    text = (mcp_server["seeds"] / top["source"]).read_text(encoding="utf-8")
    assert text[top["start"] : top["end"]] == top["text"]
