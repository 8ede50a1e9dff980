"""A question's BM25 scores, as candidate search asks for them: the best rows, any row's score, and the best score.

From the local BM25 (qa/storage/lexical.py) every row is scored at once, as
bm25s scores a query. From a Qdrant store (qa/storage/qdrant.py) the best
rows come from a sparse-vector query, and the scores of other candidates from
one more query restricted to them, so no score of the whole corpus is held.
Both score the same BM25.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

import numpy as np

if TYPE_CHECKING:
    from qa.reader.index import Index
    from qa.storage.qdrant import QdrantStore


class LexicalHits(Protocol):
    """One question's BM25 over one record kind."""

    @property
    def maximum(self) -> float:
        """The best score among the allowed rows (0 when no row holds a query token)."""
        ...

    def top(self, count: int) -> np.ndarray:
        """Rows of the `count` best positive scores, best first."""
        ...

    def at(self, rows: np.ndarray) -> np.ndarray:
        """The scores of these rows."""
        ...


def top_rows(scores: np.ndarray, count: int) -> np.ndarray:
    """Rows of the `count` highest positive scores, best first."""
    positive = np.flatnonzero(scores > 0)
    if positive.size > count:
        positive = positive[np.argpartition(-scores[positive], count - 1)[:count]]
    return positive[np.argsort(-scores[positive], kind="stable")]


def query_weights(tokens: list[str], carried: dict[str, float]) -> dict[str, float]:
    """Each query token's weight: how often the question holds it, plus what earlier turns carry over."""
    weights: dict[str, float] = {}
    for token in tokens:
        weights[token] = weights.get(token, 0.0) + 1.0
    for token, weight in carried.items():
        weights[token] = weights.get(token, 0.0) + weight
    return weights


class ScoredRows:
    """Every row's score, computed at once (the local BM25)."""

    def __init__(self, scores: np.ndarray) -> None:
        self.scores = scores

    @property
    def maximum(self) -> float:
        return float(self.scores.max()) if self.scores.size else 0.0

    def top(self, count: int) -> np.ndarray:
        return top_rows(self.scores, count)

    def at(self, rows: np.ndarray) -> np.ndarray:
        return self.scores[rows]


class ServedRows:
    """Scores a Qdrant store computes: the best rows first, then any other row asked for."""

    def __init__(
        self,
        store: QdrantStore,
        keys: np.ndarray,
        rows_of: Index,
        kind: str,
        weights: dict[str, float],
        sources: tuple[str | None, frozenset[str] | None],
    ) -> None:
        from qa.storage.qdrant import SourceFilter

        self._store = store
        self._keys = keys
        self._index = rows_of
        self._kind = kind
        self._weights = weights
        self._sources = SourceFilter(*sources) if sources != (None, None) else None
        self._known: dict[int, float] = {}
        self._best = 0.0

    def _rows(self, keys: np.ndarray) -> np.ndarray:
        if self._kind == "sentences":
            return self._index.sentence_rows(keys)
        return self._index.passage_rows(keys)

    @property
    def maximum(self) -> float:
        if not self._known:
            self.top(1)
        return self._best

    def top(self, count: int) -> np.ndarray:
        scores, keys = self._store.lexical(self._weights, count, self._sources)
        rows = self._rows(keys)
        found = (rows >= 0) & (scores > 0)
        rows, scores = rows[found], scores[found]
        self._known.update(zip(rows.tolist(), scores.tolist(), strict=True))
        if len(scores):
            self._best = max(self._best, float(scores[0]))
        return rows.astype(np.int64)

    def at(self, rows: np.ndarray) -> np.ndarray:
        rows = np.asarray(rows, dtype=np.int64)
        missing = np.unique(rows[[int(row) not in self._known for row in rows.tolist()]]) if len(rows) else rows
        if len(missing):
            scores, keys = self._store.lexical(self._weights, len(missing), self._sources, keys=self._keys[missing])
            self._known.update(zip(self._rows(keys).tolist(), scores.tolist(), strict=True))
            self._known.update({int(row): 0.0 for row in missing if int(row) not in self._known})
        return np.asarray([self._known[int(row)] for row in rows], dtype=np.float32)


def lexical_hits(
    index: Index,
    kind: str,
    tokens: list[str],
    carried: dict[str, float],
    allowed: np.ndarray | None,
    sources: tuple[str | None, frozenset[str] | None],
) -> LexicalHits:
    """The question's BM25 over `kind` ("sentences" or "passages"), only on `allowed` rows (from `sources`) when given."""
    store = index.stores[kind]
    keys = index.sentence_keys if kind == "sentences" else index.passage_keys
    if store.kind == "qdrant":
        from qa.storage.qdrant import QdrantStore

        assert isinstance(store, QdrantStore)
        return ServedRows(store, keys, index, kind, query_weights(tokens, carried), sources)
    lexical = index.sentence_lexical if kind == "sentences" else index.passage_lexical
    scores = lexical.weighted_scores(tokens, carried)
    return ScoredRows(scores * allowed if allowed is not None else scores)
