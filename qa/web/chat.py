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

import hmac
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
    render_error,
    render_header,
    render_question,
    render_status,
    render_uploads,
)
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
"""


def answer(question: str, k: int = 3) -> dict[str, Any]:
    """The structured answer as JSON: quotes with citations and character offsets, or related passages."""
    if not 1 <= k <= MAX_K:
        raise gr.Error(f"k must be from 1 to {MAX_K}: how many sentences to consider")
    try:
        return qa.answer(question, k=k).to_dict()
    except qa.QAError as error:
        raise gr.Error(str(error)) from error


def status() -> dict[str, Any]:
    """The build answers come from, its size, whether a rebuild runs, and the last recovery notice."""
    try:
        return qa.live_index().status()
    except qa.QAError as error:
        raise gr.Error(str(error)) from error


def respond(question: str, history: list[dict[str, Any]], show_scores: bool) -> tuple[str, list[dict[str, Any]]]:
    """Append the question and its rendered answer (or the error, as a message) to the chat."""
    try:
        reply = render_answer(qa.answer(question), show_scores)
    except qa.QAError as error:
        reply = render_error(str(error))
    asked = {"role": "user", "content": render_question(question)}
    return "", [*history, asked, {"role": "assistant", "content": reply}]


def respond_example(history: list[dict[str, Any]], show_scores: bool, event: gr.SelectData) -> Any:
    return respond(event.value["text"], history, show_scores)


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

            add.click(upload, files, [status, header, files], api_name="upload")
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

        rebuild_button.click(rebuild, None, [status, header], api_name="rebuild")


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
        show_scores = gr.Checkbox(label="Show scores (dense rank, BM25 rank, final score)", value=False)
        question.submit(
            respond,
            [question, chatbot, show_scores],
            [question, chatbot],
            api_visibility="undocumented",
            concurrency_limit=ANSWER_CONCURRENCY,
            concurrency_id="answer",
        )
        chatbot.example_select(
            respond_example,
            [chatbot, show_scores],
            [question, chatbot],
            api_visibility="undocumented",
            concurrency_limit=ANSWER_CONCURRENCY,
            concurrency_id="answer",
        )
        if config.admin:
            _index_panel(config, live, header)
        # Another process may rebuild the index: the header follows the build answers come from.
        shown = gr.State(None)
        demo.load(lambda: _refresh_header(live, None), None, [header, shown], api_visibility="undocumented")
        gr.Timer(HEADER_REFRESH_SECONDS).tick(
            lambda current: _refresh_header(live, current),
            shown,
            [header, shown],
            api_visibility="undocumented",
            show_progress="hidden",
            queue=False,
        )
        gr.api(answer, api_name="answer", concurrency_limit=ANSWER_CONCURRENCY, concurrency_id="answer")
        gr.api(status, api_name="status")
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
    }
