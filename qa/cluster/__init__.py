"""Building elsewhere: the new and changed files are read, split and embedded on a cluster; the commit stays here.

qa/indexing.py plans a build (which files are new or changed) and commits it;
between the two, a `Remote` may take the new files and hand back what the
local build would have made of them: their records and their vectors. Ray is
the one cluster so far (qa/cluster/ray_build.py, imported only when asked for).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from qa.embed.documents import NewVectors
from qa.ingest.seeds import SourceFile
from qa.records import SkippedFile
from qa.storage.tables import Tables


@dataclass
class MadeElsewhere:
    """The new files read, split and embedded: what a build commits in place of doing it itself.

    Attributes:
        readable: every readable seed file, as the local build's reading lists
            them (the new ones now with their extracted text).
        skipped: every skipped seed file, in the same order as the local build's.
        new_files: the readable new and changed files, in plan order.
        tables: their records, as `Tables.from_documents(split_document(f) for f in new_files)`.
        vectors: their sentence, word-window and paragraph vectors, in those records' order.
    """

    readable: list[SourceFile]
    skipped: list[SkippedFile]
    new_files: list[SourceFile]
    tables: Tables
    vectors: NewVectors


class Remote(Protocol):
    """Reads, splits and embeds the new files somewhere else."""

    def __call__(
        self, new_files: list[SourceFile], readable: list[SourceFile], skipped: list[SkippedFile]
    ) -> MadeElsewhere:
        """What a build makes of `new_files` (read with extract=False: their bytes, no text), within all the seeds."""
        ...
