"""The Qdrant side of a build (QA_STORE=qdrant): its collections, written from the build's records and BM25.

qa/indexing.py writes the build as it always does (records, BM25 segments,
word windows) and hands the sentence and paragraph vectors here instead of
to FAISS; qa/storage/qdrant.py holds the client side. Nothing imports the
Qdrant client unless Qdrant is selected.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import numpy as np

from qa.config import StoreSettings
from qa.embed.documents import EMBED_CHUNK
from qa.reader.index import read_lexical
from qa.storage.manifest import SegmentEntry
from qa.storage.segments import STORES
from qa.storage.tables import Tables, record_key
from qa.storage.vectors import VectorStore

# In the index folder: every Qdrant collection a build of it began (qa/storage/qdrant.py, QdrantWriter).
LEDGER = "qdrant-collections.json"


@dataclass
class ServedBuild:
    """A build whose vectors go to Qdrant (QA_STORE=qdrant): where its collections are written from."""

    writer: Any  # qa.storage.qdrant.QdrantWriter, imported only when Qdrant is selected
    folder: Path

    @classmethod
    def of(cls, store: StoreSettings, token: str, folder: Path) -> ServedBuild | None:
        """The Qdrant side of build `token` (written in `folder`), or None when FAISS holds the vectors."""
        if store.kind != "qdrant":
            return None
        from qa.storage.qdrant import QdrantWriter

        return cls(QdrantWriter(store, token, folder.parent / LEDGER), folder)

    def write(
        self, name: str, tables: Tables, entries: list[SegmentEntry], kept: VectorStore | None, new: np.ndarray
    ) -> VectorStore:
        """A collection of all `tables`' `name` records: the kept ones' vectors read from `kept`, then the `new` vectors."""
        from qa.storage.qdrant import Points, payloads, row_terms

        keys = record_key(getattr(tables, name)["id"])
        kept_keys = keys[: len(keys) - len(new)]

        def vectors() -> Iterator[np.ndarray]:
            for first in range(0, len(kept_keys), EMBED_CHUNK):
                assert kept is not None
                yield kept.vectors(kept_keys[first : first + EMBED_CHUNK])
            yield new

        # The build's BM25 is in its folder already: the sparse vectors are its terms.
        lexical = read_lexical(self.folder, entries, tables)[name]
        terms = row_terms(lexical, np.arange(len(keys)))
        points = Points(keys, payloads(tables, name), vectors(), terms)
        return cast(VectorStore, self.writer.write(name, new.shape[1], points))

    def publish(self, build: Path, previous: Path | None) -> None:
        """Point the aliases at the new build's collections; keep the previous live build's, remove the rest."""
        from qa.storage.qdrant import collections_of

        self.writer.publish(STORES, [*collections_of(build), *(collections_of(previous) if previous else [])])
