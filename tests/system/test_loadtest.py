"""qa/measure/loadtest.py: `python -m qa loadtest` against a real app, and the checks it makes of each answer."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from conftest import SEEDS

from qa import cli
from qa.embed.encoder import Encoder
from qa.errors import QAError
from qa.indexing import build_index
from qa.measure import loadtest
from qa.measure.served import check_loopback
from qa.reader.index import Index


@pytest.mark.parametrize("url", ["http://127.0.0.1:7860", "http://localhost:1/", "http://[::1]:7860/"])
def test_loopback_urls_are_accepted(url: str) -> None:
    assert check_loopback(url).endswith("/")


@pytest.mark.parametrize("url", ["http://example.com/", "http://10.0.0.5:7860/", "http://127.0.0.1.example.com/", ""])
def test_other_hosts_are_refused_before_any_traffic(url: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(QAError, match=r"only sends traffic to 127\.0\.0\.1"):
        check_loopback(url)
    if url:
        assert cli.main(["loadtest", "--url", url, "--seconds", "1"]) == 1
        assert "only sends traffic to 127.0.0.1" in capsys.readouterr().err


def test_bounds_must_be_positive(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["loadtest", "--clients", "0"]) == 1
    assert "--clients" in capsys.readouterr().err


def test_questions_come_from_indexed_sentences(seed_index: Index) -> None:
    questions = loadtest.questions_from(seed_index.path.parent, 10)
    assert len(questions) == 10 and len(set(questions)) == 10
    starts = {" ".join(s.text.split()[: loadtest.QUESTION_WORDS]) for s in seed_index.sentences}
    assert all(q.endswith("?") and q[:-1] in starts for q in questions)
    assert loadtest.questions_from(seed_index.path.parent, 10) == questions  # seeded: every run asks the same


def test_questions_file_takes_lines_or_jsonl(tmp_path: Path) -> None:
    plain = tmp_path / "questions.txt"
    plain.write_text("First?\n\n  Second?\n", encoding="utf-8")
    assert loadtest.read_questions(plain) == ["First?", "Second?"]
    rows = tmp_path / "questions.jsonl"
    rows.write_text(json.dumps({"question": "Third?", "answer": "x"}) + "\n", encoding="utf-8")
    assert loadtest.read_questions(rows) == ["Third?"]
    (tmp_path / "empty.txt").write_text("\n", encoding="utf-8")
    with pytest.raises(QAError, match="no questions"):
        loadtest.read_questions(tmp_path / "empty.txt")


def test_an_answer_not_sliced_from_the_build_it_names_is_caught(seed_index: Index) -> None:
    checker = loadtest.BuildTexts(seed_index.path.parent)
    sentence = seed_index.sentences[3]
    item = {"source": sentence.source, "start": sentence.start, "end": sentence.end, "text": sentence.text}
    good = {"build": seed_index.path.name, "quotes": [item], "related": []}
    assert checker.mismatch(good) is None
    mixed = {**good, "related": [{**item, "text": "A sentence from another build."}]}
    assert "is not a slice of build" in (checker.mismatch(mixed) or "")
    assert "not in" in (checker.mismatch({**good, "build": "build-gone"}) or "")
    assert loadtest.BuildTexts(None).mismatch(mixed) is None  # no index folder given: nothing to check against


def test_loadtest_drives_the_app_through_a_cli_and_an_app_rebuild_without_errors(
    tmp_path: Path, encoder: Encoder, qa_cache: Path, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    seeds, index_dir = tmp_path / "seeds", tmp_path / "index"
    shutil.copytree(SEEDS, seeds)
    first = build_index(seeds, index_dir, encoder)
    (seeds / "owls.txt").write_text("Barn owls hunt voles at night over open fields.\n", encoding="utf-8")
    monkeypatch.setenv("QA_CACHE", str(qa_cache))
    out = tmp_path / "load.json"
    argv = ["loadtest", "--clients", "3", "--seconds", "6", "--rebuild", "cli", "app",
            "--seeds", str(seeds), "--index", str(index_dir), "--json", str(out)]

    assert cli.main(argv) == 0, capsys.readouterr()
    summary = json.loads(out.read_text(encoding="utf-8"))
    assert summary["errors"] == 0 and summary["requests"] > 0 and summary["clients"] == 3
    assert summary["p50_ms"] <= summary["p95_ms"] <= summary["max_ms"]
    assert [(r["kind"], r["ok"]) for r in summary["rebuilds"]] == [("cli", True), ("app", True)]
    # Answers came from the first build and from at least one rebuild, each checked against its own text.
    assert first.path.name in summary["builds"] and len(summary["builds"]) >= 2
    assert sum(summary["builds"].values()) == summary["requests"]
    printed = capsys.readouterr().out
    assert "0 errors" in printed and "p95" in printed


def test_cli_rebuild_without_an_index_folder_is_refused_before_any_client_starts(tmp_path: Path) -> None:
    # Port 1 has no app: reaching for it would fail differently, so the refusal comes first.
    with pytest.raises(QAError, match="needs the index folder"):
        loadtest.run("http://127.0.0.1:1/", ["Who?"], 1, 1.0, 1, ["cli"], tmp_path, None)
