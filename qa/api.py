"""The library's entry points: build, load, retrieve and answer, with settings read once."""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path

from qa import indexing
from qa.config import Settings
from qa.embed.encoder import Encoder
from qa.indexing import Progress
from qa.quotes import answer_question
from qa.reader import index as reader
from qa.reader.index import Index
from qa.reader.live import LiveIndex
from qa.records import Answer, Hit
from qa.search.followup import History
from qa.search.ranking import search
from qa.verify.scorer import Verifier, load_verifier

logger = logging.getLogger(__name__)

_settings_lock = threading.Lock()
_settings: Settings | None = None


def current_settings() -> Settings:
    """The QA_* settings, read from the environment on the first call and kept for the process."""
    global _settings
    with _settings_lock:
        if _settings is None:
            _settings = Settings.from_env()
        return _settings


def reload_settings() -> Settings:
    """Read the QA_* variables again (after changing them in a running process) and use them from now on.

    Raises:
        SettingsError: a QA_* value cannot be used; the settings in use stay as they were.
    """
    global _settings
    fresh = Settings.from_env()
    with _settings_lock:
        _settings = fresh
    return fresh


def get_encoder(model: str | None = None, batch_size: int = 16, query_backend: str = "onnx") -> Encoder:
    """One encoder per model per process: the model loads once, on first use."""
    return _cached_encoder(model, batch_size, query_backend)


@lru_cache(maxsize=4)
def _cached_encoder(model: str | None, batch_size: int, query_backend: str) -> Encoder:
    # Positional, normalised arguments: lru_cache keys on how it is called. The
    # cache folder is the one set when the model is first loaded.
    return Encoder(model, batch_size, query_backend, current_settings().cache_dir)


def _encoder(chosen: Settings) -> Encoder:
    return get_encoder(chosen.model, chosen.batch_size, chosen.query_backend)


def build_index(
    seeds_dir: str | Path = "seeds",
    index_dir: str | Path = "index",
    full: bool = False,
    progress: Progress | None = None,
    ray_address: str | None = None,
) -> Index:
    """Index the seeds folder, re-embedding only new and changed files unless `full`.

    Files over QA_MAX_FILE_MB (default 25) are skipped unread.

    Args:
        progress: optional callable(done, total) called as texts are embedded
            (as documents come back, on a Ray cluster).
        ray_address: read, split and embed the new and changed files on this
            Ray cluster ("auto" or HOST:PORT; default QA_RAY_ADDRESS, else here).

    Raises:
        SeedsError: the folder is missing or has nothing to index.
        QAError: Ray is not installed, or the cluster cannot be reached or fails (the index is unchanged).
    """
    chosen = current_settings()
    encoder = _encoder(chosen)
    address = ray_address or chosen.ray_address
    if address:
        from qa.cluster.ray_build import ray_build

        with ray_build(address, encoder, chosen.model, chosen.cache_dir, progress) as cluster:
            index = indexing.build_index(
                Path(seeds_dir), Path(index_dir), encoder, full, None, chosen.max_file_mb, chosen.store, remote=cluster
            )
    else:
        index = indexing.build_index(
            Path(seeds_dir), Path(index_dir), encoder, full, progress, chosen.max_file_mb, chosen.store
        )
    with _live_lock:
        serving = [live for live in _live.values() if live.index_dir.resolve() == index.path.parent.resolve()]
    for live in serving:  # answer from the new build at once, not after a background load
        if live.encoder is index.encoder:
            live.adopt(index)
    return index


def load_index(index_dir: str | Path = "index") -> Index:
    """Load a built index, checking its manifest, model and file checksums."""
    chosen = current_settings()
    return reader.load_index(Path(index_dir), _encoder(chosen), store=chosen.store)


_live_lock = threading.Lock()
_live: dict[tuple[str, ...], LiveIndex] = {}


def live_index() -> LiveIndex:
    """The LiveIndex for the current settings (QA_SEEDS, QA_INDEX, QA_MODEL): one per process."""
    chosen = current_settings()
    key = (
        str(chosen.index_dir.resolve()),
        str(chosen.seeds_dir.resolve()),
        str(chosen.model),
        str(chosen.batch_size),
        chosen.query_backend,
        str(chosen.max_file_mb),
        repr(chosen.store),
    )
    with _live_lock:
        if key not in _live:
            _live[key] = LiveIndex(
                chosen.seeds_dir, chosen.index_dir, _encoder(chosen), chosen.max_file_mb, chosen.store
            )
        return _live[key]


def default_index() -> Index:
    """The index at QA_INDEX (default `index/`), loaded once and swapped for newer builds as they appear.

    When no index exists yet but the seeds folder (QA_SEEDS, default `seeds/`)
    has documents, it is built first; when it is damaged, it is rebuilt from
    them (see qa/reader/live.py).
    """
    return live_index().current()


def verifier() -> Verifier | None:
    """The answer verifier, loaded and checked once per process; None when QA_VERIFIER=off.

    Raises:
        VerifierError: the shipped model is missing, fails its checksum or cannot be loaded.
    """
    if not current_settings().verifier:
        return None
    return load_verifier()


def retrieve(
    question: str,
    k: int = 5,
    index: Index | None = None,
    history: History | None = None,
    sources: Sequence[str] | str | None = None,
) -> list[Hit]:
    """Sentence-level hits for the question, best first (reread by the answer verifier unless QA_VERIFIER=off).

    Args:
        history: earlier turns of a conversation, oldest first: Turn records or
            {"question": ..., "answer": Answer.to_dict() or None}. They shape the
            search of a follow-up ("What does he think?"); a question that stands
            on its own is searched as if asked alone.
        sources: keep only these sources: paths as citations show them, or globs over them.

    Raises:
        BadQuestionError: the question is empty or has no words, or the history is malformed.
        SourceNotFoundError: a source pattern matches no indexed source.
        IndexMissingError: no index and no seeds to build one from.
    """
    chosen = current_settings()
    found = search(
        index or default_index(),
        question,
        k=k,
        candidates=chosen.candidates,
        history=history,
        sources=sources,
        verifier=verifier(),
    )
    return found.hits


def answer(
    question: str,
    k: int = 3,
    index: Index | None = None,
    history: History | None = None,
    sources: Sequence[str] | str | None = None,
) -> Answer:
    """Quoted sentences that answer the question, or `answered=False` ("unsure" or "not_found") with related hits.

    `history` and `sources` are as for retrieve().
    """
    chosen = current_settings()
    return answer_question(
        index or default_index(),
        question,
        k=k,
        min_confidence=chosen.min_confidence,
        candidates=chosen.candidates,
        verifier=verifier(),
        history=history,
        sources=sources,
    )
