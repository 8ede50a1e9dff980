"""The web app for real: its settings, then one server (started as `python app.py`) per module,
called with gradio_client and driven in headless Chromium with Playwright."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from conftest import HOSTILE_QUESTIONS, REPO, SEED_NAME, SEEDS

import qa
from qa.embed.encoder import Encoder
from qa.indexing import build_index
from qa.measure import served
from qa.measure.served import App, RestClient
from qa.web import chat
from qa.web import settings as web_settings

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]
HOSTILE_NAME = "markup-test.txt"
HOSTILE_LINE = (
    "The markup test sentence reads <img src=x onerror=alert(1)> and <script>alert(2)</script> "
    "and [click me](javascript:alert(3)) and *stars* plainly."
)
SEED_QUESTION = "Who chairs the Senate Judiciary Committee?"
UNANSWERABLE = "How many people play cricket in Australia?"


# Settings


def test_by_default_the_chat_listens_on_loopback_without_upload_or_rebuild() -> None:
    config = web_settings.parse_config([], {})
    assert (config.host, config.port, config.allow_upload, config.allow_rebuild) == ("127.0.0.1", 7860, False, False)
    assert config.loopback and not config.admin and not config.needs_login
    assert config.examples == web_settings.DEFAULT_EXAMPLES


@pytest.mark.parametrize("flag", ["--allow-upload", "--allow-rebuild"])
def test_on_loopback_either_flag_shows_the_index_panel_without_a_password(flag: str) -> None:
    assert web_settings.parse_config(["--host", "::1", flag], {}).admin
    variable = "QA_" + flag.removeprefix("--").replace("-", "_").upper()
    config = web_settings.parse_config([], {"QA_HOST": "localhost", variable: "1", "QA_PORT": "9000"})
    assert config.admin and config.port == 9000 and not config.needs_login


@pytest.mark.parametrize("flag", ["--allow-upload", "--allow-rebuild"])
def test_uploads_or_rebuilds_off_loopback_refuse_to_start_without_a_password(
    flag: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit):
        web_settings.parse_config(["--host", "0.0.0.0", flag], {})
    assert "QA_ADMIN_PASSWORD" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("environ", "says"),
    [({"QA_PORT": "eighty"}, "--port"), ({"QA_MAX_UPLOAD_MB": "0"}, "above 0"), ({"QA_MAX_UPLOAD_MB": "x"}, "QA_MAX")],
)
def test_unusable_settings_stop_with_a_message(environ: dict[str, str], says: str, capsys: Any) -> None:
    with pytest.raises(SystemExit):
        web_settings.parse_config([], environ)
    assert says in capsys.readouterr().err


def test_off_loopback_the_index_panel_needs_a_login() -> None:
    open_chat = web_settings.parse_config(["--host", "0.0.0.0"], {})
    assert not open_chat.admin and not open_chat.needs_login  # chat only, no upload or rebuild
    guarded = web_settings.parse_config(["--host", "0.0.0.0", "--allow-upload"], {"QA_ADMIN_PASSWORD": "s3cret"})
    assert guarded.admin and guarded.needs_login
    check = chat.launch_options(guarded)["auth"]
    assert check("admin", "s3cret") and not check("admin", "wrong") and not check("root", "s3cret")
    assert chat.launch_options(web_settings.parse_config([], {"QA_ADMIN_PASSWORD": "s3cret"}))["auth"] is None  # loopback
    assert chat.launch_options(open_chat)["share"] is False


def test_examples_come_from_a_file(tmp_path: Path) -> None:
    examples = tmp_path / "examples.txt"
    examples.write_text("First question?\n\n  Second question?\n", encoding="utf-8")
    assert web_settings.parse_config(["--examples", str(examples)], {}).examples == ("First question?", "Second question?")
    assert web_settings.parse_config([], {"QA_EXAMPLES": str(examples)}).examples[0] == "First question?"


# The running app


@contextmanager
def _serving(root: Path, seeds: Path, qa_cache: Path, *args: str, **env: str) -> Iterator[dict[str, Any]]:
    """`python app.py ARGS` on a free port over `seeds`, index in root/index; stopped on exit."""
    environment = {"QA_SEEDS": str(seeds), "QA_INDEX": str(root / "index"), "QA_CACHE": str(qa_cache), **env}
    log = root / "app.log"
    running = App(list(args), environment, log, cwd=root)
    try:
        try:
            running.wait()
        except qa.QAError as error:
            pytest.fail(f"{error}:\n{log.read_text()}")
        yield {"url": running.url, "root": root, "seeds": seeds, "log": log, "port": running.port}
    finally:
        running.stop()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, qa_cache: Path) -> Iterator[dict[str, Any]]:
    """`python app.py --allow-upload` on a free port, over a copy of the seeds plus a hostile one, no index yet."""
    root = tmp_path_factory.mktemp("app")
    seeds = root / "seeds"
    shutil.copytree(SEEDS, seeds)
    (seeds / HOSTILE_NAME).write_text(HOSTILE_LINE + "\n", encoding="utf-8")
    with _serving(root, seeds, qa_cache, "--allow-upload", QA_MAX_UPLOAD_MB="0.01") as running:
        yield running


@pytest.fixture(scope="module")
def client(server: dict[str, Any]) -> Any:
    from gradio_client import Client

    return Client(server["url"], verbose=False)


def test_startup_built_the_missing_index_and_logged_it(server: dict[str, Any]) -> None:
    assert "no index at" in server["log"].read_text() and (server["root"] / "index" / "CURRENT").is_file()


def test_api_answers_a_seed_question_with_quote_and_citation(client: Any, server: dict[str, Any]) -> None:
    result = client.predict(SEED_QUESTION, 3, api_name="/answer")
    assert result["answered"] is True
    quote = result["quotes"][0]
    source_text = (server["seeds"] / quote["source"]).read_text(encoding="utf-8")
    assert quote["source"] == SEED_NAME and "chairman of the Senate Judiciary Committee" in quote["text"]
    assert source_text[quote["start"] : quote["end"]] == quote["text"]
    assert quote["citation"].startswith(SEED_NAME) and f"chars {quote['start']}-{quote['end']}" in quote["citation"]


def test_api_says_not_found_for_an_unanswerable_question(client: Any) -> None:
    result = client.predict(UNANSWERABLE, api_name="/answer")
    assert result["answered"] is False and result["quotes"] == [] and result["related"]


def test_api_turns_a_bad_question_into_a_message(client: Any) -> None:
    from gradio_client.exceptions import AppError

    with pytest.raises(AppError, match="question is empty"):
        client.predict("   ", api_name="/answer")
    with pytest.raises(AppError, match="k must be from 1"):
        client.predict("Who is Paul Knierim?", 0, api_name="/answer")


@pytest.mark.parametrize("name", HOSTILE_QUESTIONS)
def test_api_hostile_questions_get_an_answer_or_a_message(client: Any, server: dict[str, Any], name: str) -> None:
    from gradio_client.exceptions import AppError

    question, refusal = HOSTILE_QUESTIONS[name]
    if any("\ud800" <= character <= "\udfff" for character in question):
        # gradio_client cannot encode a lone surrogate; a raw request with JSON escapes can.
        with pytest.raises(qa.QAError, match=re.escape(str(refusal))):
            RestClient(server["url"]).predict(question, 3, api_name="/answer")
        return
    if refusal is not None:
        with pytest.raises(AppError, match=re.escape(refusal)):
            client.predict(question, api_name="/answer")
        return
    result = client.predict(question, 3, api_name="/answer")
    assert isinstance(result["answered"], bool) and result["quotes"] + result["related"]
    for item in result["quotes"] + result["related"]:
        source_text = (server["seeds"] / item["source"]).read_text(encoding="utf-8")
        assert source_text[item["start"] : item["end"]] == item["text"]


def test_rest_client_of_the_load_test_gets_what_gradio_client_gets(client: Any, server: dict[str, Any]) -> None:
    rest = RestClient(server["url"])
    assert rest.predict(SEED_QUESTION, 3, api_name="/answer") == client.predict(SEED_QUESTION, 3, api_name="/answer")
    with pytest.raises(qa.QAError, match="question is empty"):
        rest.predict("   ", 3, api_name="/answer")


def test_load_test_clients_bound_every_call(server: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> None:
    import concurrent.futures

    monkeypatch.setattr(served, "CALL_SECONDS", 0.001)
    with pytest.raises(concurrent.futures.TimeoutError):
        served.GradioClient(server["url"]).predict(SEED_QUESTION, 3, api_name="/answer")
    with pytest.raises(httpx.TimeoutException):
        served.RestClient(server["url"]).predict(SEED_QUESTION, 3, api_name="/answer")


def _outside_seeds(root: Path) -> dict[str, bytes]:
    return {
        p.relative_to(root).as_posix(): p.read_bytes()
        for p in root.rglob("*")
        if p.is_file() and not p.is_relative_to(root / "seeds") and not p.is_relative_to(root / "index")
        and p.name != "app.log"
    }


def test_hostile_uploads_through_the_app_are_refused(client: Any, server: dict[str, Any], tmp_path: Path) -> None:
    from gradio_client import handle_file

    seeds_before = sorted(p.name for p in server["seeds"].iterdir())
    outside_before = _outside_seeds(server["root"])
    script = tmp_path / "payload.sh"
    script.write_text("echo owned\n")
    status, _, _ = client.predict([handle_file(str(script))], api_name="/upload")
    assert "Refused" in status and "not a supported type" in status
    oversized = tmp_path / "big.txt"
    oversized.write_text("word " * 10_000)  # 50 kB, over the server's 0.01 MB cap
    with pytest.raises(ValueError, match="exceeds the maximum file size"):
        client.predict([handle_file(str(oversized))], api_name="/upload")
    # The server refuses it too, not only the client.
    response = httpx.post(server["url"] + "gradio_api/upload", files=[("files", ("big.txt", oversized.read_bytes()))])
    assert response.status_code == 413 and "maximum allowed size" in response.text
    assert sorted(p.name for p in server["seeds"].iterdir()) == seeds_before
    assert _outside_seeds(server["root"]) == outside_before


def test_upload_rebuild_and_ask_without_restarting(client: Any, server: dict[str, Any], tmp_path: Path) -> None:
    document = tmp_path / "owls.md"
    document.write_text("# Owls\n\nBarn owls hunt voles at night over open fields.\n", encoding="utf-8")
    status, header, _ = client.predict([handle_file_of(document)], api_name="/upload")
    assert "Saved" in status and "owls.md" in status and "stale" in header
    assert (server["seeds"] / "owls.md").read_bytes() == document.read_bytes()
    status, header = client.predict(api_name="/rebuild")
    assert "Rebuilt: 3 documents" in status and "stale" not in header
    result = client.predict("What do barn owls hunt at night?", api_name="/answer")
    assert result["answered"] and result["quotes"][0]["source"] == "owls.md"


def handle_file_of(path: Path) -> Any:
    from gradio_client import handle_file

    return handle_file(str(path))


# The browser


@pytest.fixture(scope="module")
def page(server: dict[str, Any]) -> Iterator[Any]:
    """A Chromium page on the app, recording any dialog (there must never be one)."""
    if not CHROMIUM.is_file():
        reason = f"{CHROMIUM} is missing; install the Debian package chromium (.ci/run does)"
        if os.environ.get("CI"):
            pytest.fail(reason)
        pytest.skip(reason)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1100, "height": 1100})
        page.dialogs = []
        page.on("dialog", lambda dialog: (page.dialogs.append(dialog.message), dialog.dismiss()))
        page.goto(server["url"])
        page.get_by_placeholder("Ask a question about the sources").wait_for(timeout=60_000)
        yield page
        browser.close()


def _ask(page: Any, question: str) -> Any:
    """Type the question, press Enter, and return the new answer once it has rendered."""
    answers = page.locator(".qa-answer, .qa-error")
    before = answers.count()
    box = page.get_by_placeholder("Ask a question about the sources")
    box.fill(question)
    box.press("Enter")
    answers.nth(before).wait_for(timeout=120_000)
    return answers.nth(before)


def test_browser_offers_examples_that_ask_when_clicked(page: Any) -> None:
    assert "Indexed:" in page.locator(".qa-header").inner_text()
    example = page.get_by_text("Where is fentanyl produced?").first
    example.wait_for(timeout=60_000)
    example.click()
    answer = page.locator(".qa-answer").first
    answer.wait_for(timeout=120_000)
    assert "Fentanyl is produced at big pharmaceutical labs" in answer.locator("blockquote").first.inner_text()


def test_browser_shows_quote_citation_and_highlighted_context(page: Any, tmp_path: Path) -> None:
    answer = _ask(page, SEED_QUESTION)
    quote = answer.locator("blockquote").first
    assert "chairman of the Senate Judiciary Committee" in quote.inner_text()
    assert quote.locator("sup").inner_text() == "[1]"
    summary = answer.locator("summary").first
    assert SEED_NAME in summary.inner_text() and "paragraph 7, line 8" in summary.inner_text()
    summary.click()
    mark = answer.locator("mark").first
    mark.wait_for(state="visible")
    assert "chairman of the Senate Judiciary Committee" in mark.inner_text()
    page.screenshot(path=str(tmp_path / "answer.png"), full_page=True)
    assert (tmp_path / "answer.png").stat().st_size > 0


def test_browser_answers_a_follow_up_from_the_right_sentence(page: Any) -> None:
    _ask(page, "How much profit does a fentanyl investment yield?")
    answer = _ask(page, "What about heroin?")
    assert "$80,000" in answer.locator("blockquote").first.inner_text()
    assert "Read as a follow-up to “How much profit" in answer.locator(".qa-note").last.inner_text()


def test_browser_document_picker_narrows_the_citations(page: Any) -> None:
    picker = page.locator(".qa-picker input")
    picker.click()
    page.get_by_role("option", name=HOSTILE_NAME).click()
    page.keyboard.press("Escape")
    answer = _ask(page, SEED_QUESTION)
    summaries = answer.locator("summary")
    assert summaries.count() >= 1
    assert all(HOSTILE_NAME in summaries.nth(n).inner_text() for n in range(summaries.count()))
    assert SEED_NAME not in answer.inner_text()
    page.locator(".qa-picker button[aria-label='Clear'], .qa-picker .token-remove").first.click()


def test_browser_copies_an_answer_as_markdown(page: Any) -> None:
    page.context.grant_permissions(["clipboard-read", "clipboard-write"], origin=page.url.rstrip("/"))
    answer = _ask(page, SEED_QUESTION)
    answer_message = page.locator(".qa-copy").last
    answer_message.click()
    page.wait_for_function("() => [...document.querySelectorAll('.qa-copy')].pop().dataset.copied !== undefined")
    copied = page.evaluate("() => [...document.querySelectorAll('.qa-copy')].pop().dataset.copied")
    assert copied.startswith("> ") and "chairman of the Senate Judiciary Committee" in copied
    assert f"{SEED_NAME.replace('-', chr(92) + '-').replace('.', chr(92) + '.')}" in copied
    assert answer.locator("blockquote").count() >= 1
    try:
        from_clipboard = page.evaluate("() => navigator.clipboard.readText()")
    except Exception as error:  # noqa: BLE001 - headless chromium may refuse the clipboard; the copied text is checked above
        pytest.skip(f"the clipboard cannot be read in this browser: {error}")
    assert from_clipboard == copied


def test_browser_show_scores_adds_ranks(page: Any) -> None:
    page.get_by_label("Show scores (dense rank, BM25 rank, final score)").check()
    answer = _ask(page, "Who is Paul Knierim?")
    assert "BM25 rank" in answer.locator(".qa-ranks").first.inner_text()
    page.get_by_label("Show scores (dense rank, BM25 rank, final score)").uncheck()


def test_browser_shows_markup_in_sources_and_questions_as_text(page: Any) -> None:
    hostile_question = "<img src=y onerror=alert(4)> What does the markup test sentence read?"
    answer = _ask(page, hostile_question)
    text = answer.inner_text()
    assert "<img src=x onerror=alert(1)>" in text and "<script>alert(2)</script>" in text
    assert "[click me](javascript:alert(3))" in text and "*stars*" in text
    assert answer.locator("img, script, a, em").count() == 0
    assert page.get_by_text(hostile_question).count() >= 1  # the question, shown as typed
    answer.locator("summary").first.click()
    answer.locator("mark").first.wait_for(state="visible")
    assert page.dialogs == []


def test_browser_upload_rebuild_and_ask_without_restarting(page: Any, tmp_path: Path) -> None:
    from playwright.sync_api import expect

    document = tmp_path / "bats.md"
    document.write_text("# Bats\n\nFruit bats pollinate durian flowers in Malaysia.\n", encoding="utf-8")
    page.get_by_text("Index", exact=True).click()
    page.locator("input[type=file]").set_input_files(str(document))
    # The name shows while the file uploads; its download link only once it is on the server.
    page.locator('a[download="bats.md"]').wait_for(timeout=60_000)
    page.get_by_role("button", name="Add to seeds").click()
    page.get_by_text("Saved bats.md").wait_for(timeout=60_000)
    expect(page.locator(".qa-header")).to_contain_text("stale")
    page.get_by_role("button", name="Rebuild index").click()
    page.get_by_text("Rebuilt:").wait_for(timeout=180_000)
    expect(page.locator(".qa-header")).not_to_contain_text("stale")
    answer = _ask(page, "What do fruit bats pollinate?")
    assert "Fruit bats pollinate durian flowers" in answer.locator("blockquote").first.inner_text()
    assert "bats.md" in answer.locator("summary").first.inner_text()


def test_browser_header_and_answers_follow_a_build_made_by_another_process(
    page: Any, server: dict[str, Any]
) -> None:
    from playwright.sync_api import expect

    documents = int(re.search(r"Indexed: (\d+) document", page.locator(".qa-header").inner_text()).group(1))
    (server["seeds"] / "moths.txt").write_text("Luna moths live only about a week as adults.\n", encoding="utf-8")
    command = [sys.executable, "-m", "qa", "build", "--seeds", str(server["seeds"]), "--index",
               str(server["root"] / "index")]
    built = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=600, check=False)
    assert built.returncode == 0, built.stderr
    # No reload: the app loads the new build in the background and the header's timer shows it.
    expect(page.locator(".qa-header")).to_contain_text(f"Indexed: {documents + 1} documents", timeout=60_000)
    answer = _ask(page, "How long do luna moths live as adults?")
    assert "Luna moths live only about a week" in answer.locator("blockquote").first.inner_text()
    # The document picker follows the same build: the new document can be picked without a reload.
    page.locator(".qa-picker input").click()
    expect(page.get_by_role("option", name="moths.txt")).to_be_visible(timeout=30_000)
    page.keyboard.press("Escape")


def test_browser_hostile_questions_get_a_message_or_an_answer_never_a_traceback(page: Any) -> None:
    for name, (question, refusal) in HOSTILE_QUESTIONS.items():
        if any("\ud800" <= character <= "\udfff" for character in question):
            continue  # a lone surrogate cannot be typed into a page; the API test sends it
        reply = _ask(page, question)
        if refusal is not None:
            assert "qa-error" in (reply.get_attribute("class") or "") and refusal in reply.inner_text(), name
        else:
            assert "qa-answer" in (reply.get_attribute("class") or ""), name
    body = page.locator("body").inner_text()
    assert "Traceback" not in body and "Exception" not in body
    assert page.locator(".toast-body").count() == 0 and page.dialogs == []


# The app with no flags, started over a damaged index


@pytest.fixture(scope="module")
def plain_server(tmp_path_factory: pytest.TempPathFactory, qa_cache: Path, encoder: Encoder) -> Iterator[dict[str, Any]]:
    """`python app.py` with no flags, over an index whose sentence vectors were cut in half."""
    root = tmp_path_factory.mktemp("plain-app")
    seeds = root / "seeds"
    shutil.copytree(SEEDS, seeds)
    damaged = build_index(seeds, root / "index", encoder)
    vectors = damaged.path / "sentences.faiss"
    vectors.write_bytes(vectors.read_bytes()[: vectors.stat().st_size // 2])
    with _serving(root, seeds, qa_cache) as running:
        running["damaged"] = damaged.path.name
        yield running


def _listening_addresses(port: int) -> set[str]:
    """Local addresses of the sockets listening on `port`, from /proc/net/tcp and tcp6 (hex, as the kernel writes)."""
    found = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            local, state = line.split()[1], line.split()[3]
            address, hex_port = local.split(":")
            if state == "0A" and int(hex_port, 16) == port:  # 0A: LISTEN
                found.add(address)
    return found


def test_by_default_the_app_listens_on_127_0_0_1_only(plain_server: dict[str, Any]) -> None:
    assert _listening_addresses(plain_server["port"]) == {"0100007F"}  # 127.0.0.1, little-endian hex


def test_by_default_there_is_no_upload_or_rebuild(plain_server: dict[str, Any]) -> None:
    from gradio_client import Client

    client = Client(plain_server["url"], verbose=False)
    endpoints = set(client.view_api(print_info=False, return_format="dict")["named_endpoints"])
    assert {"/answer", "/status"} <= endpoints and not {"/upload", "/rebuild"} & endpoints
    with pytest.raises(ValueError, match="rebuild"):
        client.predict(api_name="/rebuild")
    page = httpx.get(plain_server["url"]).text
    assert "Rebuild index" not in page and "Add to seeds" not in page


def test_a_damaged_index_is_rebuilt_at_start_and_the_app_says_so(plain_server: dict[str, Any]) -> None:
    from gradio_client import Client

    client = Client(plain_server["url"], verbose=False)
    status = client.predict(api_name="/status")
    assert status["build"] != plain_server["damaged"]
    assert "sentences.faiss" in status["notice"] and "rebuilt from" in status["notice"]
    assert "rebuilding it from" in plain_server["log"].read_text()
    result = client.predict(SEED_QUESTION, 3, api_name="/answer")
    assert result["answered"] and result["build"] == status["build"]
    config = httpx.get(plain_server["url"] + "config").text  # the page's header, as first rendered
    assert "could not be used" in config and "qa-error" in config
