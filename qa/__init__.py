"""Ask questions of source documents; get back their own sentences, quoted and cited.

Public API: build_index, load_index, retrieve, answer, and the records they return.
"""

from __future__ import annotations

import logging
import threading
from functools import lru_cache
from pathlib import Path

from qa import build as _build
from qa import index as _index
from qa.answer import answer_question
from qa.build import BuildReport, Progress
from qa.config import Settings
from qa.embed import Encoder
from qa.errors import (
    BadQuestionError,
    IndexCorruptError,
    IndexMissingError,
    IndexWriteError,
    ModelLoadError,
    ModelMismatchError,
    QAError,
    SeedsError,
    SettingsError,
)
from qa.index import Index
from qa.live import LiveIndex
from qa.retrieve import search
from qa.schema import Answer, Hit, Passage, Quote, Sentence

__all__ = [
    "Answer",
    "BadQuestionError",
    "BuildReport",
    "Hit",
    "Index",
    "IndexCorruptError",
    "IndexMissingError",
    "IndexWriteError",
    "ModelLoadError",
    "ModelMismatchError",
    "Passage",
    "QAError",
    "Quote",
    "SeedsError",
    "Sentence",
    "SettingsError",
    "answer",
    "build_index",
    "live_index",
    "load_index",
    "retrieve",
]

logger = logging.getLogger(__name__)


def get_encoder(model: str | None = None, batch_size: int = 32, query_backend: str = "onnx") -> Encoder:
    """One encoder per model per process: the model loads once, on first use."""
    return _cached_encoder(model, batch_size, query_backend)


@lru_cache(maxsize=4)
def _cached_encoder(model: str | None, batch_size: int, query_backend: str) -> Encoder:
    # Positional, normalised arguments: lru_cache keys on how it is called.
    return Encoder(model, batch_size, query_backend)


def _encoder(settings: Settings) -> Encoder:
    return get_encoder(settings.model, settings.batch_size, settings.query_backend)


def build_index(
    seeds_dir: str | Path = "seeds", index_dir: str | Path = "index", full: bool = False,
    progress: Progress | None = None,
) -> Index:
    """Index the seeds folder, re-embedding only new and changed files unless `full`.

    Files over QA_MAX_FILE_MB (default 25) are skipped unread.

    Args:
        progress: optional callable(done, total) called as texts are embedded.

    Raises:
        SeedsError: the folder is missing or has nothing to index.
    """
    settings = Settings.from_env()
    index = _build.build_index(
        Path(seeds_dir), Path(index_dir), _encoder(settings), full, progress, settings.max_file_mb
    )
    with _live_lock:
        serving = [live for live in _live.values() if live.index_dir.resolve() == index.path.parent.resolve()]
    for live in serving:  # answer from the new build at once, not after a background load
        if live.encoder is index.encoder:
            live.adopt(index)
    return index


def load_index(index_dir: str | Path = "index") -> Index:
    """Load a built index, checking its manifest, model and file checksums."""
    return _index.load_index(Path(index_dir), _encoder(Settings.from_env()))


_live_lock = threading.Lock()
_live: dict[tuple[str, ...], LiveIndex] = {}


def live_index() -> LiveIndex:
    """The LiveIndex for the current settings (QA_SEEDS, QA_INDEX, QA_MODEL): one per process."""
    settings = Settings.from_env()
    key = (
        str(settings.index_dir.resolve()), str(settings.seeds_dir.resolve()),
        str(settings.model), str(settings.batch_size), settings.query_backend, str(settings.max_file_mb),
    )
    with _live_lock:
        if key not in _live:
            _live[key] = LiveIndex(settings.seeds_dir, settings.index_dir, _encoder(settings), settings.max_file_mb)
        return _live[key]


def default_index() -> Index:
    """The index at QA_INDEX (default `index/`), loaded once and swapped for newer builds as they appear.

    When no index exists yet but the seeds folder (QA_SEEDS, default `seeds/`)
    has documents, it is built first; when it is damaged, it is rebuilt from
    them (see qa/live.py).
    """
    return live_index().current()


def retrieve(question: str, k: int = 5, index: Index | None = None) -> list[Hit]:
    """Sentence-level hits for the question, best first.

    Raises:
        BadQuestionError: the question is empty or has no words.
        IndexMissingError: no index and no seeds to build one from.
    """
    settings = Settings.from_env()
    return search(index or default_index(), question, k=k, candidates=settings.candidates).hits


def answer(question: str, k: int = 3, index: Index | None = None) -> Answer:
    """Quoted sentences that answer the question, or `answered=False` with related hits."""
    settings = Settings.from_env()
    return answer_question(
        index or default_index(),
        question,
        k=k,
        min_confidence=settings.min_confidence,
        candidates=settings.candidates,
    )
