"""The command line, in-process for speed, plus one real `python -m qa` run."""

from __future__ import annotations

import errno
import io
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from commands import Captured, assert_one_line_error, run
from conftest import REPO, SEED_NAME, SEEDS

from qa.quotes import UNSURE
from qa.reader.index import Index
from qa.storage.vectors import FaissStore


@pytest.fixture
def index_dir(seed_index: Index) -> str:
    return str(seed_index.path.parent)


def test_build_prints_a_summary_and_rebuild_is_incremental(capsys: Captured, seeds_copy: Path, tmp_path: Path) -> None:
    index = str(tmp_path / "index")
    code, out, err = run(capsys, "build", "--seeds", str(seeds_copy), "--index", index)
    assert code == 0, err
    assert out.startswith("full build of ")
    assert "1 added, 0 changed, 0 removed, 0 unchanged, 0 skipped" in out
    assert re.search(r"embedded [1-9]\d* sentences", out)

    code, out, err = run(capsys, "build", "--seeds", str(seeds_copy), "--index", index)
    assert code == 0, err
    assert out.startswith("incremental build of ")
    assert "0 added, 0 changed, 0 removed, 1 unchanged, 0 skipped" in out
    assert "embedded 0 sentences and 0 paragraphs" in out


def test_build_lists_skipped_files_on_stderr(capsys: Captured, seeds_copy: Path, tmp_path: Path) -> None:
    (seeds_copy / "scan.txt").write_bytes(b"\x00\x01binary")
    code, out, err = run(capsys, "build", "--seeds", str(seeds_copy), "--index", str(tmp_path / "index"))
    assert code == 0
    assert "1 skipped" in out
    assert "skipped scan.txt: looks binary" in err


def test_build_without_seeds_is_a_one_line_error(capsys: Captured, tmp_path: Path) -> None:
    code, out, err = run(capsys, "build", "--seeds", str(tmp_path / "none"), "--index", str(tmp_path / "index"))
    assert code == 1 and out == ""
    assert_one_line_error(err, "does not exist")


def test_ask_prints_the_quote_and_its_citation(
    capsys: Captured, index_dir: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Threshold 0: this checks what `ask` prints, not how the confidence is calibrated.
    monkeypatch.setenv("QA_MIN_CONFIDENCE", "0")
    code, out, err = run(capsys, "ask", "Who is Paul Knierim?", "--index", index_dir)
    assert code == 0, err
    lines = out.splitlines()
    assert lines[0].startswith("[1] “Paul Knierim, deputy chief of operations at the Drug Enforcement Administration")
    assert lines[1].strip().startswith(f'{SEED_NAME} § "Fentanyl\'s spread in the U.S.", paragraph 10, line 11, chars ')


def test_ask_abstains_below_the_configured_threshold(
    capsys: Captured, index_dir: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("QA_MIN_CONFIDENCE", "1.5")  # no confidence reaches it
    code, out, err = run(capsys, "ask", "Who is Paul Knierim?", "--index", index_dir)
    assert code == 0, err
    lines = out.splitlines()
    # The confidence is well above 0.2, so the answer is "unsure": the closest sentence, no quote.
    assert lines[0] == UNSURE and lines[1].startswith("  “Paul Knierim")
    assert SEED_NAME in lines[2] and not any(line.startswith("[1]") for line in lines)


def test_ask_json_is_valid_and_cites(capsys: Captured, index_dir: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("QA_MIN_CONFIDENCE", "0")
    code, out, err = run(capsys, "ask", "Who is Paul Knierim?", "--index", index_dir, "--json", "--k", "2")
    assert code == 0, err
    data = json.loads(out)
    assert data["answered"] is True and data["question"] == "Who is Paul Knierim?"
    assert data["quotes"] and all(SEED_NAME in quote["citation"] for quote in data["quotes"])
    source_text = (SEEDS / SEED_NAME).read_text(encoding="utf-8")
    for quote in data["quotes"]:
        assert source_text[quote["start"] : quote["end"]] == quote["text"]
    assert "Knierim" in data["quotes"][0]["text"]
    assert 1 <= len(data["quotes"]) + len(data["related"]) <= 2


def test_info_reports_model_and_staleness(capsys: Captured, index_dir: str, seeds_copy: Path) -> None:
    code, out, err = run(capsys, "info", "--index", index_dir, "--seeds", str(seeds_copy))
    assert code == 0, err
    assert re.search(r"^model:\s+all-MiniLM-L6-v2 \(384d, weights sha256 [0-9a-f]{12}\)$", out, re.MULTILINE)
    assert re.search(r"^formats:\s+1 txt$", out, re.MULTILINE)
    assert re.search(r"^search:\s+sentences exact, passages exact \(exact up to 100,000 vectors", out, re.MULTILINE)
    assert re.search(r"^segments:\s+1 \(BM25, word windows and texts", out, re.MULTILINE)
    assert re.search(rf"^  txt\s+{re.escape(SEED_NAME)}: \d+ paragraphs, \d+ sentences$", out, re.MULTILINE)
    assert re.search(r"^stale:\s+no\b", out, re.MULTILINE)
    assert "stale:     yes" not in out

    with (seeds_copy / SEED_NAME).open("a", encoding="utf-8") as handle:
        handle.write("A late addition to the record.\n")
    code, out, err = run(capsys, "info", "--index", index_dir, "--seeds", str(seeds_copy))
    assert code == 0, err
    assert re.search(rf"^stale:\s+yes\b.*changed: {re.escape(SEED_NAME)}", out, re.MULTILINE)
    assert "python -m qa build" in out


@pytest.mark.parametrize("command", ["ask", "info"])
def test_missing_index_is_a_one_line_error(capsys: Captured, tmp_path: Path, command: str) -> None:
    argv = ["ask", "Who is Paul Knierim?"] if command == "ask" else ["info"]
    code, out, err = run(capsys, *argv, "--index", str(tmp_path / "no-index"))
    assert code == 1 and out == ""
    assert_one_line_error(err, "python -m qa build")


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["ask", ""], "the question is empty"),
        (["ask", "   "], "the question is empty"),
        (["ask", "Who is Paul Knierim?", "--k", "0"], "--k must be at least 1"),
        (["ask", "Who is Paul Knierim?", "--k", "-3"], "--k must be at least 1"),
    ],
)
def test_bad_ask_is_a_one_line_error(capsys: Captured, index_dir: str, argv: list[str], message: str) -> None:
    code, out, err = run(capsys, *argv, "--index", index_dir)
    assert code == 1 and out == ""
    assert_one_line_error(err, message)


def test_build_that_cannot_write_is_a_one_line_error(
    capsys: Captured, seeds_copy: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def disk_full(self: object, path: Path) -> None:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))

    monkeypatch.setattr(FaissStore, "save", disk_full)
    code, _, err = run(capsys, "build", "--seeds", str(seeds_copy), "--index", str(tmp_path / "index"))
    assert code == 1
    assert_one_line_error(err, "No space left on device", "the previous index is unchanged")


def test_bad_min_confidence_setting_is_a_one_line_error(
    capsys: Captured, index_dir: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("QA_MIN_CONFIDENCE", "high")
    code, _, err = run(capsys, "info", "--index", index_dir)
    assert code == 1
    assert_one_line_error(err, "QA_MIN_CONFIDENCE")


def test_python_m_qa_ask_end_to_end(index_dir: str) -> None:
    """The one real subprocess: entry point, offline model load, printing."""
    environment = {name: value for name, value in os.environ.items() if not name.startswith("QA_")}
    environment["HF_HUB_OFFLINE"] = "1"
    result = subprocess.run(
        [sys.executable, "-m", "qa", "ask", "Who chairs the Senate Judiciary Committee?", "--index", index_dir],
        cwd=REPO,
        env=environment,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert result.returncode == 0, result.stderr
    assert "Grassley" in result.stdout
    assert SEED_NAME in result.stdout and "paragraph" in result.stdout
    assert "Traceback" not in result.stderr


def chat(monkeypatch: pytest.MonkeyPatch, capsys: Captured, index_dir: str, lines: str) -> tuple[int, str, str]:
    """`qa chat` with `lines` as its standard input (not a terminal)."""
    monkeypatch.setattr(sys, "stdin", io.StringIO(lines))
    return run(capsys, "chat", "--index", index_dir)


def test_chat_keeps_the_history_and_survives_bad_input(
    index_dir: str, monkeypatch: pytest.MonkeyPatch, capsys: Captured
) -> None:
    lines = "How much profit does a fentanyl investment yield?\n?!\n\n   \nWhat about heroin?\n"
    code, out, err = chat(monkeypatch, capsys, index_dir, lines)
    assert code == 0
    assert_one_line_error(err, "no words")
    answers = out.strip().split("\n\n")
    # Blank lines are skipped, not the end of the chat; the follow-up after them is
    # quoted from the sentence about heroin's profit, which it never names.
    assert len(answers) == 2 and "$80,000" in answers[1].splitlines()[0]
    assert "Read as a follow-up" in answers[1]


def test_chat_new_forgets_the_earlier_turns_and_quit_ends_it(
    index_dir: str, monkeypatch: pytest.MonkeyPatch, capsys: Captured
) -> None:
    lines = "Who is Derek Scissors?\n/NEW\nWhere does he work?\n/quit\nWho chairs the Senate Judiciary Committee?\n"
    code, out, err = chat(monkeypatch, capsys, index_dir, lines)
    assert code == 0 and "a new conversation" in err and "Traceback" not in err
    answers = out.strip().split("\n\n")
    # After /new the follow-up has nothing to lean on: it is searched as if asked first.
    assert len(answers) == 2 and "Read as a follow-up" not in answers[1]  # and nothing after /quit is asked
    _, alone, _ = chat(monkeypatch, capsys, index_dir, "Where does he work?\n")
    assert answers[1] == alone.strip()


def test_chat_in_a_terminal_prompts_skips_a_stray_enter_and_ends_on_ctrl_d(index_dir: str) -> None:
    """A real terminal (a pseudo-terminal): the prompt, an empty line that loses nothing, Ctrl-D."""
    import pty
    import select
    import time

    environment = {name: value for name, value in os.environ.items() if not name.startswith("QA_")}
    environment["HF_HUB_OFFLINE"] = "1"
    controller, terminal = pty.openpty()
    process = subprocess.Popen(
        [sys.executable, "-m", "qa", "chat", "--index", index_dir],
        cwd=REPO,
        env=environment,
        stdin=terminal,
        stdout=terminal,
        stderr=terminal,
        close_fds=True,
    )
    os.close(terminal)
    shown = b""

    def read_until(marker: bytes, times: int = 1, seconds: float = 180) -> None:
        nonlocal shown
        deadline = time.monotonic() + seconds
        while shown.count(marker) < times and time.monotonic() < deadline:
            ready, _, _ = select.select([controller], [], [], 1)
            if ready:
                try:
                    shown += os.read(controller, 65536)
                except OSError:  # the chat closed the terminal
                    return
        assert shown.count(marker) >= times, shown.decode(errors="replace")

    try:
        read_until(b"> ")
        assert b"/quit or Ctrl-D" in shown
        os.write(controller, b"Who is Derek Scissors?\n")
        read_until(b"Confidence that the sources answer this")
        os.write(controller, b"\n")  # a stray Enter: prompted again, not the end
        os.write(controller, b"Where does he work?\n")
        read_until(b"Read as a follow-up")
        read_until(b"\n> ", times=4)  # the prompts before each line, and the one after the follow-up's answer
        os.write(controller, b"\x04")  # Ctrl-D at the start of a line: end of input
        assert process.wait(timeout=60) == 0, shown.decode(errors="replace")
    finally:
        process.kill()
        os.close(controller)
    text = shown.decode(errors="replace")
    assert "American Enterprise Institute" in text and "Traceback" not in text


def test_chat_answers_a_first_question_as_ask_does(
    index_dir: str, monkeypatch: pytest.MonkeyPatch, capsys: Captured
) -> None:
    question = "Where is fentanyl produced?"
    code, asked, _ = run(capsys, "ask", question, "--index", index_dir)
    assert code == 0
    code, chatted, _ = chat(monkeypatch, capsys, index_dir, question + "\n")
    # The same path, the answer verifier included: the same quotes and the same confidence.
    assert code == 0 and chatted.strip() == asked.strip()


def test_ask_with_a_source_that_matches_nothing_names_it(index_dir: str, capsys: Captured) -> None:
    code, _, err = run(capsys, "ask", "Who is Paul Knierim?", "--index", index_dir, "--source", "*.pdf")
    assert code == 1
    assert_one_line_error(err, "'*.pdf'")
    code, out, _ = run(capsys, "ask", "Who is Paul Knierim?", "--index", index_dir, "--source", "senate-*", "--json")
    assert code == 0 and all(q["source"].startswith("senate-") for q in json.loads(out)["quotes"])
