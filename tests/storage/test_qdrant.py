"""The Qdrant store (QA_STORE=qdrant) against qdrant-client's local mode, and a real server when QA_QDRANT_URL is set."""

from __future__ import annotations

import json
import os
import shutil
import socket
import threading
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from builds import DOCS, write_docs
from conftest import SEEDS, load_dev_set

import qa
from qa.config import Settings, StoreSettings
from qa.embed.encoder import Encoder
from qa.errors import IndexWriteError, SettingsError, StoreMismatchError, StoreUnavailableError
from qa.indexing import build_index
from qa.quotes import answer_question
from qa.reader.index import Index, load_index
from qa.search.ranking import search
from qa.storage import qdrant
from qa.storage.layout import live_build
from qa.storage.tables import record_key

# Questions about the seed, asked of both stores (the dev sets add theirs when they are beside the repo).
QUESTIONS = [
    "Who chairs the Senate Judiciary Committee?",
    "What did Derek Scissors say about sanctions?",
    "How much fentanyl comes from China?",
    "When was the hearing held?",
    "What does the caucus want the administration to do?",
    "Who is Paul Knierim?",
]


def _client_of(store: StoreSettings) -> Any:
    return qdrant.connect(store)


@pytest.fixture(scope="module")
def both(encoder: Encoder, tmp_path_factory: pytest.TempPathFactory) -> tuple[Index, Index, StoreSettings]:
    """The seed built into FAISS files and into a local Qdrant folder."""
    root = tmp_path_factory.mktemp("qdrant")
    store = StoreSettings(kind="qdrant", path=root / "qdrant")
    served = build_index(SEEDS, root / "index", encoder, store=store)
    local = build_index(SEEDS, root / "faiss-index", encoder)
    return local, served, store


def test_settings_select_qdrant_with_a_url_or_a_path() -> None:
    chosen = Settings.from_env({"QA_STORE": "qdrant", "QA_QDRANT_URL": "http://db:6333", "QA_QDRANT_TIMEOUT": "2.5"})
    assert (chosen.store.kind, chosen.store.url, chosen.store.timeout) == ("qdrant", "http://db:6333", 2.5)
    assert Settings.from_env({}).store == StoreSettings()
    with pytest.raises(SettingsError, match="QA_QDRANT_URL"):
        Settings.from_env({"QA_STORE": "qdrant"})
    with pytest.raises(SettingsError, match="faiss, qdrant"):
        Settings.from_env({"QA_STORE": "milvus"})
    with pytest.raises(SettingsError, match="QA_QDRANT_TIMEOUT"):
        Settings.from_env({"QA_STORE": "qdrant", "QA_QDRANT_PATH": "/tmp/q", "QA_QDRANT_TIMEOUT": "forever"})
    with pytest.raises(SettingsError, match="QA_QDRANT_COLLECTION"):
        Settings.from_env({"QA_STORE": "qdrant", "QA_QDRANT_PATH": "/tmp/q", "QA_QDRANT_COLLECTION": "a/b"})


def test_qdrant_ranks_and_scores_as_the_local_stores(both: tuple[Index, Index, StoreSettings]) -> None:
    local, served, _ = both
    assert served.sentence_store.kind == "qdrant" and local.sentence_store.kind == "exact"
    questions = QUESTIONS + [row["question"] for row in load_dev_set()]
    for question in questions:
        expected, found = search(local, question, 5), search(served, question, 5)
        assert [hit.id for hit in found.hits] == [hit.id for hit in expected.hits], question
        np.testing.assert_allclose([h.score for h in found.hits], [h.score for h in expected.hits], atol=1e-4)
        assert found.confidence == pytest.approx(expected.confidence, abs=1e-4)


def test_points_hold_our_ids_offsets_and_bm25_terms(both: tuple[Index, Index, StoreSettings]) -> None:
    _, served, store = both
    client = _client_of(store)
    collection = served.sentence_store.collection  # type: ignore[attr-defined]
    assert client.count(collection).count == len(served.sentences)
    row = 3
    key = int(served.sentence_keys[row])
    (point,) = client.retrieve(collection, ids=[key], with_vectors=True)
    sentence = served.sentences[row]
    assert point.payload["id"] == sentence.id
    assert (point.payload["start"], point.payload["end"]) == (sentence.start, sentence.end)
    text = served.source_text(point.payload["source"])
    assert text[point.payload["start"] : point.payload["end"]] == sentence.text
    np.testing.assert_allclose(point.vector["dense"], served.sentence_store.vectors(np.array([key]))[0], atol=1e-6)
    assert len(point.vector["bm25"].indices) > 0
    # The sparse query scores the local BM25 for the same tokens.
    tokens = ["fentanyl", "china"]
    scores, keys = served.sentence_store.lexical({token: 1.0 for token in tokens}, 5)  # type: ignore[attr-defined]
    local = served.sentence_lexical.scores(tokens)
    rows = served.sentence_rows(keys)
    np.testing.assert_allclose(scores, local[rows], rtol=1e-4)
    assert scores[0] == pytest.approx(local.max(), rel=1e-4)


def test_answers_from_qdrant_quote_their_sources(both: tuple[Index, Index, StoreSettings]) -> None:
    _, served, _ = both
    for question in QUESTIONS:
        answer = answer_question(served, question)
        for quote in [*answer.quotes, *answer.related]:
            source = quote.location.source
            assert served.source_text(source)[quote.location.start : quote.location.end] == quote.text


def test_a_scope_filters_inside_qdrant(encoder: Encoder, tmp_path: Path) -> None:
    seeds = write_docs(tmp_path / "seeds", DOCS)
    shutil.copy(SEEDS / next(p.name for p in SEEDS.iterdir()), seeds / "seed.txt")
    store = StoreSettings(kind="qdrant", path=tmp_path / "qdrant")
    index = build_index(seeds, tmp_path / "index", encoder, store=store)
    found = search(index, "Who chairs the committee that held the hearing on fentanyl?", 5, sources=["*.txt"])
    assert found.hits and {hit.location.source for hit in found.hits} <= {"alpha.txt", "beta.txt", "seed.txt"}
    narrow = search(index, "Who chairs the committee that held the hearing on fentanyl?", 5, sources=["alpha.txt"])
    assert {hit.location.source for hit in narrow.hits} == {"alpha.txt"}


def test_an_incremental_build_writes_a_new_collection_and_moves_the_alias(encoder: Encoder, tmp_path: Path) -> None:
    seeds = write_docs(tmp_path / "seeds", DOCS)
    store = StoreSettings(kind="qdrant", path=tmp_path / "qdrant", collection="test")
    first = build_index(seeds, tmp_path / "index", encoder, store=store)
    client = _client_of(store)
    aliases = {a.alias_name: a.collection_name for a in client.get_aliases().aliases}
    assert aliases["test-sentences"] == first.sentence_store.collection  # type: ignore[attr-defined]
    write_docs(seeds, {"epsilon.txt": "Epsilon lake freezes in December. Skaters cross it in January.\n"})
    second = build_index(seeds, tmp_path / "index", encoder, store=store)
    assert second.report is not None and not second.report.full
    assert second.report.embedded_sentences == 2  # only the new document
    aliases = {a.alias_name: a.collection_name for a in client.get_aliases().aliases}
    assert aliases["test-sentences"] == second.sentence_store.collection  # type: ignore[attr-defined]
    assert aliases["test-passages"] == second.passage_store.collection  # type: ignore[attr-defined]
    # The kept vectors were copied, not re-embedded, and equal a FAISS build of the same seeds.
    faiss_index = build_index(seeds, tmp_path / "faiss-index", encoder)
    keys = record_key(faiss_index.tables.sentences["id"])
    np.testing.assert_allclose(second.sentence_store.vectors(keys), faiss_index.sentence_store.vectors(keys), atol=1e-5)
    third = build_index(seeds, tmp_path / "index", encoder, store=store)
    names = {c.name for c in client.get_collections().collections}
    # The live build's collections and the previous one's (still served by a reader until it moves) are kept.
    assert names == {
        *(store.collection for store in third.stores.values()),  # type: ignore[attr-defined]
        *(store.collection for store in second.stores.values()),  # type: ignore[attr-defined]
    }
    assert search(third, "When does Epsilon lake freeze?", 1).hits[0].text == "Epsilon lake freezes in December."


def test_a_failed_write_leaves_the_last_good_collection_in_use(
    encoder: Encoder, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    seeds = write_docs(tmp_path / "seeds", DOCS)
    store = StoreSettings(kind="qdrant", path=tmp_path / "qdrant")
    build_index(seeds, tmp_path / "index", encoder, store=store)
    live = live_build(tmp_path / "index")
    client = _client_of(store)
    before = {c.name for c in client.get_collections().collections}
    write_docs(seeds, {"epsilon.txt": "Epsilon lake freezes in December.\n"})
    upsert = client.upsert
    calls = {"count": 0}

    def failing(*args: Any, **kwargs: Any) -> Any:
        calls["count"] += 1
        if calls["count"] > 1:  # the sentences are written, the passages fail
            raise qdrant.ResponseHandlingException(ConnectionError("server went away"))
        return upsert(*args, **kwargs)

    monkeypatch.setattr(client, "upsert", failing)
    with pytest.raises(IndexWriteError, match="previous index is unchanged"):
        build_index(seeds, tmp_path / "index", encoder, store=store)
    monkeypatch.undo()
    assert live_build(tmp_path / "index") == live
    assert {c.name for c in client.get_collections().collections} == before
    index = load_index(tmp_path / "index", encoder, store=store)
    assert search(index, "Where do farmers plant rice?", 1).hits[0].text == "Farmers plant rice on its banks."


def test_an_index_in_another_store_is_refused_with_what_to_run(
    both: tuple[Index, Index, StoreSettings], encoder: Encoder
) -> None:
    local, served, store = both
    with pytest.raises(StoreMismatchError, match="QA_STORE=qdrant"):
        load_index(served.path.parent, encoder)
    with pytest.raises(StoreMismatchError, match="unset QA_STORE"):
        load_index(local.path.parent, encoder, store=store)


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_an_unreachable_server_fails_each_question_clearly_and_the_build_keeps_the_last_index(
    both: tuple[Index, Index, StoreSettings], encoder: Encoder, tmp_path: Path
) -> None:
    _, served, _ = both
    down = StoreSettings(kind="qdrant", url=f"http://127.0.0.1:{_closed_port()}", timeout=2)
    index = load_index(served.path.parent, encoder, store=down)  # loading asks nothing of the server
    for _ in range(2):
        with pytest.raises(StoreUnavailableError, match="did not answer"):
            search(index, QUESTIONS[0], 3)
    seeds = write_docs(tmp_path / "seeds", DOCS)
    with pytest.raises(IndexWriteError, match="previous index is unchanged"):
        build_index(seeds, tmp_path / "index", encoder, store=down)
    assert not (tmp_path / "index" / "CURRENT").exists()


def test_a_server_that_never_answers_times_out(both: tuple[Index, Index, StoreSettings], encoder: Encoder) -> None:
    _, served, _ = both
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)  # accepts connections, never answers
        port = silent.getsockname()[1]
        index = load_index(
            served.path.parent, encoder, store=StoreSettings("qdrant", f"http://127.0.0.1:{port}", timeout=1)
        )
        outcome: list[BaseException] = []
        asking = threading.Thread(target=lambda: _ask(index, outcome))
        asking.start()
        asking.join(60)  # a bound far above the 1 s timeout: only a hang exceeds it
        assert not asking.is_alive(), "the question hung on a server that never answers"
    assert outcome and isinstance(outcome[0], StoreUnavailableError)


def _ask(index: Index, outcome: list[BaseException]) -> None:
    try:
        search(index, QUESTIONS[0], 3)
    except BaseException as error:  # noqa: BLE001 - handed to the test's thread
        outcome.append(error)


def test_the_settings_reach_the_api(both: tuple[Index, Index, StoreSettings], monkeypatch: pytest.MonkeyPatch) -> None:
    _, served, store = both
    monkeypatch.setenv("QA_STORE", "qdrant")
    monkeypatch.setenv("QA_QDRANT_PATH", str(store.path))
    qa.reload_settings()
    try:
        index = qa.load_index(served.path.parent)
        assert index.sentence_store.kind == "qdrant"
        assert qa.answer(QUESTIONS[0], index=index).quotes
    finally:
        monkeypatch.delenv("QA_STORE")
        monkeypatch.delenv("QA_QDRANT_PATH")
        qa.reload_settings()


class _Proxy:
    """A TCP relay in front of a server, which a test can cut and restore."""

    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.open = True
        self.connections: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            if not self.open:
                client.close()
                continue
            upstream = socket.create_connection(self.target)
            self.connections += [client, upstream]
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    @staticmethod
    def _pipe(source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                sink.sendall(data)
        except OSError:
            pass
        finally:
            sink.close()

    def cut(self) -> None:
        self.open = False
        for connection in self.connections:
            connection.close()
        self.connections = []


@pytest.mark.skipif(
    not os.environ.get("QA_QDRANT_URL"), reason="QA_QDRANT_URL is not set: no Qdrant server to test against"
)
def test_a_real_server_serves_and_recovers(encoder: Encoder, tmp_path: Path) -> None:
    from urllib.parse import urlparse

    url = urlparse(os.environ["QA_QDRANT_URL"])
    proxy = _Proxy((url.hostname or "localhost", url.port or 6333))
    store = StoreSettings("qdrant", f"http://127.0.0.1:{proxy.port}", api_key=os.environ.get("QA_QDRANT_API_KEY"))
    store = StoreSettings(store.kind, store.url, None, store.api_key, f"qa-test-{os.getpid()}", timeout=3)
    index = build_index(SEEDS, tmp_path / "index", encoder, store=store)
    try:
        assert search(index, QUESTIONS[0], 3).hits
        proxy.cut()
        with pytest.raises(StoreUnavailableError):
            search(index, QUESTIONS[0], 3)
        proxy.open = True
        assert search(index, QUESTIONS[0], 3).hits  # serving again once the server is back
    finally:
        client = qdrant.connect(store)
        for collection in client.get_collections().collections:
            if collection.name.startswith(store.collection):
                client.delete_collection(collection.name)
        manifest = json.loads((live_build(tmp_path / "index") / "manifest.json").read_text())
        assert manifest["stores"]["sentences"]["kind"] == "qdrant"


def test_the_default_path_never_imports_the_qdrant_client(seed_index: Index) -> None:
    import subprocess
    import sys

    from conftest import REPO

    script = (
        "import sys, qa\n"
        f"index = qa.load_index({str(seed_index.path.parent)!r})\n"
        "assert qa.answer('Who chairs the Senate Judiciary Committee?', index=index).quotes\n"
        "print(sorted(name for name in sys.modules if name.split('.')[0] in ('qdrant_client', 'ray')))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], cwd=REPO, capture_output=True, text=True, check=True, timeout=300
    )
    assert done.stdout.strip().splitlines()[-1] == "[]"


def test_the_live_index_starts_while_the_server_is_down_and_answers_once_it_is_back(
    both: tuple[Index, Index, StoreSettings], encoder: Encoder, monkeypatch: pytest.MonkeyPatch
) -> None:
    from qa.reader.live import LiveIndex

    _, served, store = both
    client = _client_of(store)

    def down(*args: Any, **kwargs: Any) -> Any:
        raise qdrant.ResponseHandlingException(ConnectionError("connection refused"))

    monkeypatch.setattr(client, "query_points", down)  # the server goes away
    live = LiveIndex(SEEDS, served.path.parent, encoder, store=store)
    index = live.warm()  # starts without its warm-up question
    with pytest.raises(StoreUnavailableError, match="check that the server is up"):
        answer_question(live.current(), QUESTIONS[0])
    monkeypatch.undo()  # and comes back
    assert answer_question(live.current(), QUESTIONS[0]).quotes
    assert live.current() is index


def test_the_command_line_builds_into_qdrant_and_says_so(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from commands import assert_one_line_error, run

    seeds = write_docs(tmp_path / "seeds", DOCS)
    index = str(tmp_path / "index")
    monkeypatch.setenv("QA_STORE", "qdrant")
    monkeypatch.setenv("QA_QDRANT_PATH", str(tmp_path / "qdrant"))
    qa.reload_settings()
    try:
        code, out, _ = run(capsys, "build", "--seeds", str(seeds), "--index", index)
        assert code == 0, out
        code, out, _ = run(capsys, "info", "--index", index)
        assert code == 0 and "sentences qdrant" in out and "qa-sentences-" in out
        code, out, _ = run(capsys, "ask", "--index", index, "Where do farmers plant rice?")
        assert code == 0 and "Farmers plant rice on its banks." in out
        monkeypatch.delenv("QA_STORE")
        qa.reload_settings()
        code, _, err = run(capsys, "ask", "--index", index, "Where do farmers plant rice?")
        assert code != 0
        assert_one_line_error(err, "keeps its vectors in Qdrant", "QA_STORE=qdrant")
    finally:
        monkeypatch.delenv("QA_STORE", raising=False)
        qa.reload_settings()


def test_builds_remove_only_their_own_index_folders_collections(encoder: Encoder, tmp_path: Path) -> None:
    from qa.storage.qdrant import QdrantWriter

    seeds = write_docs(tmp_path / "seeds", DOCS)
    store = StoreSettings(kind="qdrant", path=tmp_path / "qdrant")  # one server and prefix, two index folders
    other = build_index(seeds, tmp_path / "other-index", encoder, store=store)
    # A build of the first folder killed while writing: its collection exists and its ledger names it.
    (tmp_path / "index").mkdir()
    killed = QdrantWriter(store, "killed", tmp_path / "index" / "qdrant-collections.json")
    killed.write("sentences", 4, qdrant.Points(np.zeros(0, dtype=np.int64), dict, iter([]), iter([])))
    client = _client_of(store)
    assert killed.collection("sentences") in {c.name for c in client.get_collections().collections}
    for _ in range(3):
        index = build_index(seeds, tmp_path / "index", encoder, store=store)
    names = {c.name for c in client.get_collections().collections}
    assert killed.collection("sentences") not in names
    assert {s.collection for s in other.stores.values()} <= names  # type: ignore[attr-defined]
    assert search(other, "Where do farmers plant rice?", 1).hits[0].text == "Farmers plant rice on its banks."
    assert search(index, "Where do farmers plant rice?", 1).hits[0].text == "Farmers plant rice on its banks."
