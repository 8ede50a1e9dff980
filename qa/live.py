"""The index a long-running app answers from, and rebuilding it without a pause in answers.

Questions are answered from `qa.default_index()`, the index at QA_INDEX held
in memory and reloaded when its CURRENT pointer changes, whether this process
rebuilt it or another one did. A rebuild writes a new build folder and swaps
CURRENT in one rename (qa/build.py), so until it finishes every question is
answered from the old index, already in memory, and afterwards from the new one.
"""

from __future__ import annotations

import logging
import threading

import qa
from qa.build import Progress
from qa.config import Settings
from qa.errors import QAError
from qa.index import Index

logger = logging.getLogger(__name__)


class RebuildRunning(QAError):
    """A rebuild was asked for while another one runs in this process."""


class LiveIndex:
    """The live index at QA_INDEX/QA_SEEDS and at most one rebuild of it at a time."""

    def __init__(self) -> None:
        self._rebuilding = threading.Lock()

    @property
    def settings(self) -> Settings:
        return Settings.from_env()

    def current(self) -> Index:
        """The live index; built first when there is none but the seeds folder has documents."""
        return qa.default_index()

    def warm(self) -> Index:
        """Load the live index, the model and the BM25 tables now rather than on the first question."""
        index = self.current()
        qa.retrieve("a warm-up question about the sources", k=1, index=index)
        return index

    @property
    def rebuilding(self) -> bool:
        return self._rebuilding.locked()

    def rebuild(self, progress: Progress | None = None) -> Index:
        """Build the seeds into the index (incrementally) and return the new live index, loaded.

        Raises:
            RebuildRunning: a rebuild started here has not finished.
            QAError: the build failed; the previous index stays live.
        """
        if not self._rebuilding.acquire(blocking=False):
            raise RebuildRunning("a rebuild is already running; wait for it to finish")
        try:
            settings = self.settings
            built = qa.build_index(settings.seeds_dir, settings.index_dir, progress=progress)
            logger.info("rebuilt %s: %s documents", built.path, built.manifest["counts"]["sources"])
            # Load the new build into memory here, so no question waits for it.
            return self.warm()
        finally:
            self._rebuilding.release()
