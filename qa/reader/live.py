"""The index a long-running process answers from: swapped for newer builds without a pause, rebuilt when damaged.

`qa.default_index()` and the web app answer from a LiveIndex, the index at
QA_INDEX held in memory. Each call to `current()` reads the CURRENT pointer
(one small file). When it names a newer build than the one in memory, written
by this process or by `python -m qa build` in another, a background thread
loads and warms that build while questions go on being answered from the old
one, then swaps it in with one assignment. A question takes the index once, at
its start, so its answer comes wholly from one build, never a mix.

When the index on disk cannot be used at all (a file fails its checksum, the
pointer names nothing), it is rebuilt from the seeds and `notice` says so.
"""

from __future__ import annotations

import logging
import threading
import time
from pathlib import Path
from typing import Any

from qa.config import DEFAULT_MAX_FILE_MB, StoreSettings
from qa.embed.encoder import Encoder
from qa.errors import IndexCorruptError, IndexMissingError, QAError, RebuildRunning, StoreUnavailableError
from qa.indexing import Progress, build_index
from qa.reader.index import Index, load_index
from qa.search.ranking import search
from qa.storage.layout import live_build

logger = logging.getLogger(__name__)

WARM_UP_QUESTION = "a warm-up question about the sources"


class LiveIndex:
    """The index at one folder, kept current, and at most one rebuild of it at a time."""

    def __init__(
        self,
        seeds_dir: Path,
        index_dir: Path,
        encoder: Encoder,
        max_file_mb: float = DEFAULT_MAX_FILE_MB,
        store: StoreSettings | None = None,
    ) -> None:
        self.seeds_dir = seeds_dir
        self.index_dir = index_dir
        self.encoder = encoder
        self.max_file_mb = max_file_mb
        self.store = store or StoreSettings()
        self.notice: str | None = None  # the last recovery, for the app to show
        self._index: Index | None = None
        self._state = threading.Lock()  # guards _index, _background, _tried and notice
        self._first_load = threading.Lock()
        self._rebuilding = threading.Lock()
        self._background: threading.Thread | None = None
        self._tried: set[str] = set()  # on-disk states already loaded or recovered from: never retried

    def current(self) -> Index:
        """The index to answer from: the newest that has finished loading.

        Raises:
            IndexMissingError: there is no index and no seeds folder to build one from.
            QAError: the index cannot be loaded or rebuilt (the message says why).
        """
        index = self._index
        if index is None:
            return self._load_first()
        try:
            live = live_build(self.index_dir)
        except QAError as error:
            # The files in memory still answer; the broken folder is rebuilt behind them.
            reason = str(error)
            self._in_background(f"broken:{reason}", lambda: self._recover(reason))
            return index
        if live != index.path:
            self._in_background(live.name, lambda: self._load_newer())
        return index

    def warm(self) -> Index:
        """Load the index, the model and the BM25 tables now rather than on the first question."""
        return _warmed(self.current())

    @property
    def rebuilding(self) -> bool:
        return self._rebuilding.locked()

    def rebuild(self, progress: Progress | None = None, full: bool = False) -> Index:
        """Build the seeds into the index (incrementally unless `full`) and answer from it once warm.

        Raises:
            RebuildRunning: a rebuild started here has not finished.
            QAError: the build failed; the previous index stays live.
        """
        if not self._rebuilding.acquire(blocking=False):
            raise RebuildRunning("a rebuild is already running; wait for it to finish")
        try:
            built = build_index(
                self.seeds_dir,
                self.index_dir,
                self.encoder,
                full=full,
                progress=progress,
                max_file_mb=self.max_file_mb,
                store=self.store,
            )
            logger.info("rebuilt %s: %s documents", built.path, built.manifest.counts.sources)
            return self.adopt(_warmed(built))
        finally:
            self._rebuilding.release()

    def adopt(self, index: Index) -> Index:
        """Answer from `index` from now on, unless CURRENT already names a newer build."""
        with self._state:
            if self._index is None or index.path == _pointer_or_none(self.index_dir):
                self._index = index
            return self._index

    def status(self) -> dict[str, Any]:
        """What is being answered from: build, counts, whether a rebuild runs, and any recovery notice."""
        index = self.current()
        counts = index.manifest.counts
        return {
            "build": index.path.name,
            "built_at": index.manifest.built_at,
            "documents": counts.sources,
            "sentences": counts.sentences,
            "rebuilding": self.rebuilding,
            "notice": self.notice,
        }

    def _load_first(self) -> Index:
        with self._first_load:
            if self._index is not None:
                return self._index
            try:
                index = load_index(self.index_dir, self.encoder, store=self.store)
            except IndexMissingError:
                if not self.seeds_dir.is_dir():
                    raise
                logger.info("no index at %s; building it from %s", self.index_dir, self.seeds_dir)
                index = build_index(
                    self.seeds_dir, self.index_dir, self.encoder, max_file_mb=self.max_file_mb, store=self.store
                )
            except IndexCorruptError as error:
                if not self.seeds_dir.is_dir():
                    raise
                index = self._rebuild_damaged(str(error))
            return self.adopt(index)

    def _in_background(self, state: str, job: Any) -> None:
        """Run `job` on a thread unless one runs already or this on-disk state was handled before."""
        with self._state:
            if state in self._tried or (self._background is not None and self._background.is_alive()):
                return
            self._tried.add(state)
            self._background = threading.Thread(target=job, name="qa-live-index", daemon=True)
            self._background.start()

    def _load_newer(self) -> None:
        try:
            index = load_index(self.index_dir, self.encoder, store=self.store)
        except IndexCorruptError as error:
            self._recover(str(error))
            return
        except QAError as error:
            self._set_notice(
                f"A newer index at {self.index_dir} cannot be loaded ({error}); answers come from the "
                "build loaded before."
            )
            logger.error("%s", self.notice)
            return
        self.adopt(_warmed(index))
        logger.info("now answering from %s", index.path)

    def _recover(self, reason: str) -> None:
        try:
            with self._rebuilding:
                self.adopt(_warmed(self._rebuild_damaged(reason)))
        except QAError as error:
            self._set_notice(
                f"The index at {self.index_dir} cannot be used ({reason}) and rebuilding it from "
                f"{self.seeds_dir} failed ({error}); answers come from the build loaded before."
            )
            logger.error("%s", self.notice)

    def _rebuild_damaged(self, reason: str) -> Index:
        logger.warning(
            "the index at %s cannot be used (%s); rebuilding it from %s", self.index_dir, reason, self.seeds_dir
        )
        index = build_index(
            self.seeds_dir, self.index_dir, self.encoder, full=True, max_file_mb=self.max_file_mb, store=self.store
        )
        self._set_notice(
            f"The index at {self.index_dir} could not be used ({reason}), so it was rebuilt from "
            f"{self.seeds_dir} at {time.strftime('%H:%M:%S')}."
        )
        return index

    def _set_notice(self, notice: str) -> None:
        with self._state:
            self.notice = notice


def _warmed(index: Index) -> Index:
    """The index after one search, so its BM25 tables and the model are loaded before a user asks.

    A vector server that is down leaves it cold rather than unused: questions
    then get the server's error until it is back.
    """
    try:
        search(index, WARM_UP_QUESTION, k=1)
    except StoreUnavailableError as error:
        logger.warning("answering from %s without a warm-up: %s", index.path, error)
    return index


def _pointer_or_none(index_dir: Path) -> Path | None:
    try:
        return live_build(index_dir)
    except QAError:
        return None
