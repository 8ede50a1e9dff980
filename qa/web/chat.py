"""The web chat: a Gradio page and API over the live index (`python app.py`, or `python -m qa.web`).

Gradio wiring only: answering, rendering, uploads and rebuilds live in the
library (qa.api, qa/render/html.py, qa/web/uploads.py, qa/reader/live.py) and
the settings in qa/web/settings.py.
"""

from __future__ import annotations

import os

# Set before gradio and the model are imported: no analytics or version check
# calls, and the bundled model is never fetched.
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import functools
import hmac
import json
import logging
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import gradio as gr

import qa
from qa.reader.live import LiveIndex
from qa.render.html import (
    render_answer,
    render_copy,
    render_error,
    render_header,
    render_question,
    render_status,
    render_uploads,
)
from qa.render.markdown import render_markdown
from qa.web.settings import AppConfig, parse_config
from qa.web.uploads import allowed_suffixes, save_uploads

logger = logging.getLogger("qa.web")

ADMIN_USER = "admin"

HEADER_REFRESH_SECONDS = 5  # a tick compares one short string; the header is rebuilt only on a change

# Answering is short and CPU-bound (one ONNX thread, numpy, FAISS): two at once fill the two cores.
ANSWER_CONCURRENCY = 2

MAX_K = 50  # each retriever contributes 50 candidates (Settings.candidates); more would be padding

CSS = """
.qa-answer blockquote { border-left: 4px solid #7c9cbf; margin: 0.4em 0; padding: 0.2em 0.8em; }
.qa-answer mark { background: #ffe36e; color: inherit; padding: 0 1px; }
.qa-answer summary { cursor: pointer; }
.qa-answer .qa-sources { list-style: none; padding-left: 0; }
.qa-answer .qa-context { margin: 0.4em 0 0.6em 1em; }
.qa-stale, .qa-refused, .qa-error { color: #b3261e; }
.qa-answer blockquote.qa-closest { border-left-color: #c9a227; color: #555; }
.qa-copy { font-size: 0.85em; padding: 0.1em 0.6em; border: 1px solid #999; border-radius: 4px; cursor: pointer; }
"""

# One listener for every answer's copy button: the chat's HTML is sanitised
# (no inline handlers), so the page's script copies the hidden Markdown beside
# the button that was clicked.
COPY_SCRIPT = """
<script>
document.addEventListener("click", async (event) => {
  const button = event.target.closest && event.target.closest(".qa-copy");
  if (!button) return;
  const markdown = button.parentElement.querySelector(".qa-markdown").textContent;
  try {
    await navigator.clipboard.writeText(markdown);
    button.textContent = "Copied";
  } catch (error) {
    button.textContent = "Copy failed: " + error;
  }
  button.dataset.copied = markdown;
});
</script>
"""


def answer(question: str, k: int = 3) -> dict[str, Any]:
    """The structured answer as JSON: quotes with citations and character offsets, or related passages.

    The `/answer` endpoint keeps these two inputs, so REST callers that send
    `[question, k]` go on working; `answer_in_conversation` takes sources and history too.
    """
    return answer_in_conversation(question, k)


def answer_in_conversation(
    question: str, k: int = 3, sources: list[str] | None = None, history: list[dict[str, Any]] | None = None
) -> dict[str, Any]:
    """Answer a question with sentences quoted verbatim from the indexed documents, each with its citation.

    Nothing is generated: every quote is source_text[start:end] of its source.
    When the documents do not answer, "answered" is false and "related" lists
    the closest sentences.

    Args:
        question: the question, in plain words.
        k: how many top sentences to consider quoting (1 to 50; default 3).
        sources: answer only from these documents: paths as citations name them, or globs such as "*.pdf".
        history: earlier turns, oldest first, each {"question": text, "answer": the answer object it got, or null}, or the answer object alone; lets a follow-up say "he" or "that agency".

    Returns:
        {"question", "answered", "confidence", "quotes": [{"text", "source", "start", "end", "section", "paragraph", "line", "page", "score", "citation", ...}], "related": [...], "notes", "build"}
    """
    _check_k(k)
    try:
        return qa.answer(question, k=k, sources=sources or None, history=history or None).to_dict()
    except qa.QAError as error:
        raise gr.Error(str(error)) from error


def retrieve(
    question: str, k: int = 5, sources: list[str] | None = None, history: list[dict[str, Any]] | None = None
) -> list[dict[str, Any]]:
    """The sentences of the indexed documents that best match a question, best first, each with its citation.

    Args:
        question: the question, in plain words.
        k: how many sentences to return (1 to 50; default 5).
        sources: search only these documents: paths as citations name them, or globs such as "*.pdf".
        history: earlier turns, oldest first, each {"question": text, "answer": the answer object it got, or null}, or the answer object alone.

    Returns:
        A list of {"text", "source", "start", "end", "section", "paragraph", "line", "page", "score", "citation", "dense_rank", "lexical_rank", "context", "context_start"}.
    """
    _check_k(k)
    try:
        return [hit.to_dict() for hit in qa.retrieve(question, k=k, sources=sources or None, history=history or None)]
    except qa.QAError as error:
        raise gr.Error(str(error)) from error


def _as_json_tool(function: Callable[..., Any], name: str) -> Callable[..., str]:
    """The function with its result as JSON text, named `name` (the MCP tool's name), same signature and docstring."""

    @functools.wraps(function)
    def tool(*args: Any, **kwargs: Any) -> str:
        return json.dumps(function(*args, **kwargs), ensure_ascii=False)

    tool.__annotations__ = {**function.__annotations__, "return": str}
    tool.__name__ = name
    return tool


def _check_k(k: int) -> None:
    if not isinstance(k, int) or not 1 <= k <= MAX_K:
        raise gr.Error(f"k must be from 1 to {MAX_K}: how many sentences to consider")


def status() -> dict[str, Any]:
    """The build answers come from, its size, whether a rebuild runs, and the last recovery notice."""
    try:
        return qa.live_index().status()
    except qa.QAError as error:
        raise gr.Error(str(error)) from error


Messages = list[dict[str, Any]]
Turns = list[dict[str, Any]]


def respond(
    question: str, messages: Messages, show_scores: bool, turns: Turns | None = None, sources: list[str] | None = None
) -> tuple[str, Messages, Turns]:
    """Append the question and its rendered answer (or the error, as a message) to the chat.

    `turns` is the conversation so far as the answer API takes it (a
    follow-up leans on it); `sources` the documents picked, none for all.
    """
    turns = list(turns or [])
    try:
        result = qa.answer(question, history=turns, sources=sources or None)
        # Only quotes are worth copying: "not found" gets no copy button.
        copy = render_copy(render_markdown(result)) if result.answered else ""
        reply = render_answer(result, show_scores) + copy
        turns.append({"question": question, "answer": result.to_dict()})
    except qa.QAError as error:
        reply = render_error(str(error))
    asked = {"role": "user", "content": render_question(question)}
    return "", [*messages, asked, {"role": "assistant", "content": reply}], turns


def respond_example(
    messages: Messages, show_scores: bool, turns: Turns, sources: list[str] | None, event: gr.SelectData
) -> Any:
    return respond(event.value["text"], messages, show_scores, turns, sources)


def _source_choices(live: LiveIndex) -> list[str]:
    try:
        return sorted(live.current().sources)
    except qa.QAError:
        return []


def _password_check(password: str) -> Callable[[str, str], bool]:
    def check(username: str, given: str) -> bool:
        # compare_digest on both, always: the time taken says nothing about either.
        user_ok = hmac.compare_digest(username.encode(), ADMIN_USER.encode())
        return hmac.compare_digest(given.encode(), password.encode()) and user_ok

    return check


def _header(live: LiveIndex) -> str:
    """The header line and any recovery notice, or what went wrong loading the index (the page must still render)."""
    try:
        header = render_header(live.current(), live.seeds_dir)
    except qa.QAError as error:
        return render_status(f"The index cannot be loaded: {error}", ok=False)
    return header + (render_status(live.notice, ok=False) if live.notice else "")


def _refresh_header(live: LiveIndex, shown: str | None) -> tuple[Any, str | None]:
    """A new header when answers come from another build (or a notice) than the page shows, else no update."""
    try:
        now = f"{live.current().path.name}|{live.notice}"
    except qa.QAError as error:
        now = str(error)
    return (gr.skip(), shown) if now == shown else (_header(live), now)


def _refresh_page(live: LiveIndex, shown: str | None, picked: list[str] | None) -> tuple[Any, str | None, Any]:
    """The header, as _refresh_header gives it, and the document picker listing the same build's documents.

    Documents still picked stay picked; one the new build no longer holds is dropped.
    """
    header, now = _refresh_header(live, shown)
    if now == shown:
        return header, now, gr.skip()
    choices = _source_choices(live)
    return header, now, gr.update(choices=choices, value=[name for name in picked or [] if name in choices])


def _index_panel(config: AppConfig, live: LiveIndex, header: gr.HTML) -> None:
    """Upload (when enabled) and rebuild, with a status line and a progress bar."""
    with gr.Accordion("Index", open=False):
        status = gr.HTML()
        if config.allow_upload:
            kinds = ", ".join(allowed_suffixes())
            limit = f"{config.max_upload_bytes / 1024 / 1024:g} MB"
            files = gr.File(label=f"Add seed files ({kinds}; up to {limit} each)", file_count="multiple")
            add = gr.Button("Add to seeds")

            def upload(paths: list[str] | None) -> tuple[str, str, None]:
                named = [(Path(path).name, Path(path)) for path in paths or []]
                outcomes = save_uploads(live.seeds_dir, named, config.max_upload_bytes)
                return render_uploads(outcomes), _header(live), None

            add.click(
                upload, files, [status, header, files], api_name="upload", api_visibility=_admin_visibility(config)
            )
        rebuild_button = gr.Button("Rebuild index", variant="primary")

        # Gradio finds the progress tracker by this default; it is never shared between calls.
        def rebuild(progress: gr.Progress = gr.Progress()) -> tuple[str, str]:  # noqa: B008
            def report(done: int, total: int) -> None:
                progress((done, total), desc="Embedding", unit="texts")

            try:
                index = live.rebuild(report)
            except qa.QAError as error:
                failed = render_status(f"Rebuild failed: {error}", ok=False)
                return failed, _header(live)
            counts = index.manifest.counts
            done = f"Rebuilt: {counts.sources} documents, {counts.sentences} sentences; answers now use it."
            return render_status(done), _header(live)

        rebuild_button.click(
            rebuild, None, [status, header], api_name="rebuild", api_visibility=_admin_visibility(config)
        )


def _admin_visibility(config: AppConfig) -> Any:
    """Endpoints that are no MCP tool when the MCP server is on: still callable by clients, not listed.

    An agent may ask (answer, retrieve); it may not upload or rebuild.
    """
    return "undocumented" if config.mcp else "public"


def build_app(config: AppConfig, live: LiveIndex) -> gr.Blocks:
    """The page: header, chat with examples, show-scores toggle, index panel and the JSON endpoint."""
    with gr.Blocks(title="Ask the sources") as demo:
        gr.Markdown("## Ask the sources\nEvery answer is quoted verbatim from the documents, with its source.")
        header = gr.HTML(_header(live))
        chatbot = gr.Chatbot(
            label="Answers",
            render_markdown=False,  # answers are HTML built and escaped in qa/render/html.py; no markdown pass
            sanitize_html=True,
            examples=[{"text": question} for question in config.examples],
            height=560,
        )
        question = gr.Textbox(placeholder="Ask a question about the sources", show_label=False, submit_btn="Ask")
        picker = gr.Dropdown(
            choices=_source_choices(live),
            multiselect=True,
            label="Answer only from these documents (none picked: all)",
            elem_classes="qa-picker",
        )
        show_scores = gr.Checkbox(label="Show scores (dense rank, BM25 rank, final score)", value=False)
        # The conversation as the answer API takes it: questions and their answers, for follow-ups.
        turns = gr.State([])
        chatbot.clear(lambda: [], None, turns, api_visibility="undocumented")
        question.submit(
            respond,
            [question, chatbot, show_scores, turns, picker],
            [question, chatbot, turns],
            api_visibility="undocumented",
            concurrency_limit=ANSWER_CONCURRENCY,
            concurrency_id="answer",
        )
        chatbot.example_select(
            respond_example,
            [chatbot, show_scores, turns, picker],
            [question, chatbot, turns],
            api_visibility="undocumented",
            concurrency_limit=ANSWER_CONCURRENCY,
            concurrency_id="answer",
        )
        if config.admin:
            _index_panel(config, live, header)
        # Another process, or this page's rebuild, may make a new build: the header
        # and the document picker follow the build answers come from.
        shown = gr.State(None)
        demo.load(lambda: _refresh_page(live, None, []), None, [header, shown, picker], api_visibility="undocumented")
        gr.Timer(HEADER_REFRESH_SECONDS).tick(
            lambda current, picked: _refresh_page(live, current, picked),
            [shown, picker],
            [header, shown, picker],
            api_visibility="undocumented",
            show_progress="hidden",
            queue=False,
        )
        # With the MCP server on, every public endpoint is a tool. Gradio turns a
        # dict result into its Python repr there, so the tools are twins that
        # return JSON text; the dict endpoints and status stay callable by
        # clients, out of the tool list.
        visibility = _admin_visibility(config)
        limits: dict[str, Any] = {"concurrency_limit": ANSWER_CONCURRENCY, "concurrency_id": "answer"}
        gr.api(answer, api_name="answer", api_visibility=visibility, **limits)
        gr.api(retrieve, api_name="retrieve", api_visibility=visibility, **limits)
        gr.api(status, api_name="status", api_visibility=visibility)
        gr.api(answer_in_conversation, api_name="answer_in_conversation", api_visibility=visibility, **limits)
        if config.mcp:
            gr.api(_as_json_tool(answer_in_conversation, "answer"), api_name="answer_json", **limits)
            gr.api(_as_json_tool(retrieve, "retrieve"), api_name="retrieve_json", **limits)
    return demo


def main(argv: list[str] | None = None) -> int:
    """Load the index and model, then serve until interrupted."""
    config = parse_config(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)  # Gradio's own startup probes of this server
    try:
        live = qa.live_index()
        index = live.warm()  # built when missing, rebuilt from the seeds when damaged
        qa.api.verifier()  # loaded and checked now, not on the first question
    except qa.QAError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    logger.info("answering from %s (%s documents)", index.path, index.manifest.counts.sources)
    if live.notice:
        logger.warning("%s", live.notice)
    if not config.admin:
        logger.info("index panel hidden: uploads and rebuilds are off (--allow-upload, --allow-rebuild)")
    build_app(config, live).queue().launch(**launch_options(config))
    return 0


def launch_options(config: AppConfig) -> dict[str, Any]:
    """Arguments for Blocks.launch: address, login off loopback, upload cap, no share link, local fonts."""
    login = _password_check(config.admin_password) if config.needs_login and config.admin_password else None
    return {
        "server_name": config.host,
        "server_port": config.port,
        "share": False,
        "auth": login,
        "auth_message": "Log in as 'admin' with the password in QA_ADMIN_PASSWORD.",
        "max_file_size": config.max_upload_bytes,
        "ssr_mode": False,
        "footer_links": ["api"],
        # System fonts: the default theme would fetch Google fonts, and there may be no internet.
        "theme": gr.themes.Default(font=["system-ui", "sans-serif"], font_mono=["ui-monospace", "monospace"]),
        "css": CSS,
        "head": COPY_SCRIPT,
        "mcp_server": config.mcp,
    }
