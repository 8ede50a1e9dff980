"""Shared fixtures: the real bundled model (loaded once) and an index of the real seed."""

from __future__ import annotations

import json
import os
import shutil
import sys
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parent.parent

# Set before anything imports huggingface_hub: the model is bundled, never fetched.
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"
# The package is not installed; make it importable whatever the working directory.
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

import qa  # noqa: E402
from qa.config import Settings  # noqa: E402
from qa.embed.encoder import Encoder  # noqa: E402
from qa.reader.index import Index  # noqa: E402

SEEDS = REPO / "seeds"
SEED_NAME = "senate-caucus-hearing-fentanyl-from-china.txt"
SEED_FILE = SEEDS / SEED_NAME
DEV_SET = REPO.parent / "shared" / "eval" / "dev_seed.jsonl"
DEV_SET_MISSING = f"dev set {DEV_SET} is missing; it lives in the shared eval folder beside the repo"


# Questions a user might send by mistake or on purpose, asked at every door
# (tests/system/test_hostile.py, tests/system/test_app.py).
EMPTY = "the question is empty"
NO_WORDS = "the question has no words to search for"
NOT_TEXT = "the question is not valid text"

# id: (question, None when it is answered, else the start of the refusal)
HOSTILE_QUESTIONS: dict[str, tuple[str, str | None]] = {
    "empty": ("", EMPTY),
    "whitespace only": (" \t\n\u3000 ", EMPTY),
    "NUL only": ("\x00", EMPTY),
    "punctuation only": ("?!...", NO_WORDS),
    "inverted punctuation": ("¿¡", NO_WORDS),
    "emoji only": ("🔥🇨🇳", NO_WORDS),
    "combining marks only": ("\u0301\u0308\u0327", NO_WORDS),
    "zero-width characters only": ("\u200b\u200d\ufeff", NO_WORDS),
    "lone surrogate": ("\ud800", NOT_TEXT),
    "lone surrogate among words": ("who chairs \udcff the committee?", NOT_TEXT),
    "100,000 characters": (("Who chairs the Senate Judiciary Committee? " * 2400)[:100_000], None),
    "one 100,000-letter word": ("a" * 100_000, None),
    "control characters and NUL": ("Who\x00 chairs\x07 the\x1b[31m committee?", None),
    "emoji and mixed scripts": ("🔥🇨🇳 фентанил 芬太尼 who chairs?", None),
    "right to left": ("من يرأس اللجنة؟ מי עומד בראש הוועדה?", None),
    "right-to-left override": ("Who \u202echairs\u202c the Judiciary Committee?", None),
    "combining marks": ("Wh\u0301o cha\u0308irs the c\u0327ommittee?", None),
    "SQL": ("'; DROP TABLE sentences; --", None),
    "HTML and script": ("<script>alert(1)</script> who chairs the committee?", None),
    "markup attribute": ('<img src=x onerror="alert(1)"> Who is Paul Knierim?', None),
    "format strings": ("%s %d {0} {question} {{}} \\n", None),
    "stopwords only": ("the of and", None),
}

SYSTEM_TESTS = REPO / "tests" / "system"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark everything under tests/system/ as `system`, so `pytest -m "not system"` leaves it out."""
    for item in items:
        if SYSTEM_TESTS in Path(item.path).parents:
            item.add_marker(pytest.mark.system)


def load_dev_set() -> list[dict[str, Any]]:
    """The dev questions, or [] when the shared eval file is absent."""
    if not DEV_SET.is_file():
        return []
    lines = DEV_SET.read_text(encoding="utf-8").splitlines()
    return [json.loads(line) for line in lines if line.strip()]


def write_tiny_squad(path: Path) -> Path:
    """Two articles in SQuAD v1.1 form, with answer offsets as SQuAD gives them."""

    def paragraph(context: str, question: str, answer: str, qid: str) -> dict:
        return {
            "context": context,
            "qas": [{"id": qid, "question": question, "answers": [{"text": answer, "answer_start": context.index(answer)}]}],
        }

    data = {
        "version": "1.1",
        "data": [
            {"title": "Harbour_Bridge", "paragraphs": [
                paragraph("The bridge opened in 1932. It was painted grey by a crew of twelve.",
                          "When did the bridge open?", "1932", "a1"),
                paragraph("Tolls are collected on the southbound lanes only.",
                          "Which lanes pay tolls?", "southbound", "a2"),
            ]},
            {"title": "Alpine_Lakes", "paragraphs": [
                paragraph("Lake Orta lies west of Lake Maggiore. Its water is unusually clear.",
                          "Which lake lies west of Lake Maggiore?", "Lake Orta", "b1"),
            ]},
        ],
    }
    path.write_text(json.dumps(data), encoding="utf-8")
    return path


@pytest.fixture(scope="session", autouse=True)
def _no_qa_environment() -> Any:
    """Remove every QA_* variable for the whole session, before any other fixture runs."""
    with pytest.MonkeyPatch.context() as patch:
        for name in list(os.environ):
            if name.startswith("QA_"):
                patch.delenv(name)
        yield


@pytest.fixture(autouse=True)
def _no_qa_environment_per_test(monkeypatch: pytest.MonkeyPatch) -> None:
    """Undo any QA_* variable a previous test or fixture might have left behind."""
    for name in list(os.environ):
        if name.startswith("QA_"):
            monkeypatch.delenv(name)
    qa.reload_settings()  # the library keeps the settings it read; start each test from the defaults


@pytest.fixture(scope="session")
def qa_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The session's cache folder (QA_CACHE): the ONNX export of the model is written here once."""
    return tmp_path_factory.mktemp("qa-cache")


@pytest.fixture(scope="session")
def encoder(qa_cache: Path) -> Encoder:
    """The bundled model, loaded once per session and shared with the library's own calls."""
    defaults = Settings()
    os.environ["QA_CACHE"] = str(qa_cache)  # read when the encoder is made; removed before each test
    try:
        qa.reload_settings()
        encoder = qa.get_encoder(defaults.model, defaults.batch_size, defaults.query_backend)
        if encoder.cache_dir != qa_cache:  # made earlier in the session, by a test that asked the library first
            qa.api._cached_encoder.cache_clear()
            encoder = qa.get_encoder(defaults.model, defaults.batch_size, defaults.query_backend)
    finally:
        del os.environ["QA_CACHE"]
        qa.reload_settings()
    _ = encoder.model  # load now, so the cost is paid once and not inside a timed test
    _ = encoder.onnx_query  # export (or load) the question encoder once, too
    return encoder


@pytest.fixture(scope="session")
def seed_index(encoder: Encoder, tmp_path_factory: pytest.TempPathFactory) -> Index:
    """The real seed folder, indexed once per session into a temporary folder."""
    return qa.indexing.build_index(SEEDS, tmp_path_factory.mktemp("index"), encoder)


@pytest.fixture
def small_seeds(tmp_path: Path) -> Path:
    """Three short documents (tests/builds.py DOCS) in a seeds folder of their own."""
    from builds import DOCS, write_docs

    return write_docs(tmp_path / "seeds", DOCS)


@pytest.fixture
def built(small_seeds: Path, tmp_path: Path, encoder: Encoder) -> tuple[Path, Path, Index]:
    """(seeds, index folder, index) after one full build of the small seeds."""
    index_dir = tmp_path / "index"
    return small_seeds, index_dir, qa.indexing.build_index(small_seeds, index_dir, encoder)


@pytest.fixture(scope="session")
def small_pristine(encoder: Encoder, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(seeds, index folder): builds.FAULT_DOCS built once per session; never changed, only copied."""
    from builds import FAULT_DOCS, write_docs

    root = tmp_path_factory.mktemp("small")
    seeds_dir = write_docs(root / "seeds", FAULT_DOCS)
    qa.indexing.build_index(seeds_dir, root / "index", encoder)
    return seeds_dir, root / "index"


@pytest.fixture
def small_copy(small_pristine: tuple[Path, Path], tmp_path: Path) -> tuple[Path, Path]:
    """(seeds, index folder): a private copy of small_pristine, cheaper than a build."""
    seeds_dir, index_dir = (tmp_path / "seeds", tmp_path / "index")
    shutil.copytree(small_pristine[0], seeds_dir)
    shutil.copytree(small_pristine[1], index_dir, symlinks=True)
    return seeds_dir, index_dir


@pytest.fixture
def seeds_copy(tmp_path: Path) -> Path:
    """A private copy of the seed folder that a test may change."""
    target = tmp_path / "seeds"
    shutil.copytree(SEEDS, target)
    return target


@pytest.fixture(scope="session")
def dev_set() -> list[dict[str, Any]]:
    rows = load_dev_set()
    if not rows:
        if os.environ.get("CI"):
            pytest.fail(DEV_SET_MISSING)  # in CI the quality bar must run, not skip
        pytest.skip(DEV_SET_MISSING)
    return rows


@pytest.fixture(scope="session")
def dev_results(dev_set: list[dict[str, Any]], seed_index: Index) -> dict[str, tuple[list[qa.Hit], qa.Answer]]:
    """For each dev question id: `qa.retrieve(q, k=3)` and `qa.answer(q)` over the seed index.

    Computed once, because every search embeds the question with the real model.
    """
    return {
        row["id"]: (qa.retrieve(row["question"], k=3, index=seed_index), qa.answer(row["question"], index=seed_index))
        for row in dev_set
    }
