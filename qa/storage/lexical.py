"""BM25 over texts with bm25s: built with the index, saved beside it and memory-mapped on load (nothing pickled)."""

from __future__ import annotations

import logging
import math
from collections.abc import Iterable
from pathlib import Path

import bm25s
import numpy as np
import simplemma
import Stemmer
from bm25s.stopwords import STOPWORDS_EN

logger = logging.getLogger(__name__)
# bm25s sets its own logger to DEBUG on import, which would flood any handler
# an application configures; its warnings still come through.
logging.getLogger("bm25s").setLevel(logging.WARNING)

_STEMMER = Stemmer.Stemmer("english")
# bm25s's English list is Lucene's 33 words. Questions also carry question
# words, auxiliaries and pronouns that say nothing about which sentence answers;
# left in, an unseen "who" would weigh as much as a rare name.
QUESTION_WORDS = [
    "who",
    "whom",
    "whose",
    "what",
    "which",
    "when",
    "where",
    "why",
    "how",
    "do",
    "does",
    "did",
    "done",
    "doing",
    "has",
    "have",
    "had",
    "having",
    "were",
    "been",
    "being",
    "am",
    "can",
    "could",
    "would",
    "should",
    "may",
    "might",
    "must",
    "i",
    "me",
    "my",
    "we",
    "our",
    "you",
    "your",
    "he",
    "him",
    "his",
    "she",
    "her",
    "its",
    "them",
    "those",
    "some",
    "any",
    "also",
    "from",
    "about",
    "than",
    "so",
]
STOPWORDS = sorted(set(STOPWORDS_EN) | set(QUESTION_WORDS))


def normalize_words(words: list[str]) -> list[str]:
    """Lemmatise, then stem: "said" meets "say" and "bought" meets "buy", which a
    stemmer alone leaves apart, and "cooperation" still meets "cooperate"."""
    return _STEMMER.stemWords([simplemma.lemmatize(word, lang="en") for word in words])


def tokenize(texts: list[str]) -> list[list[str]]:
    """Lower-cased, stop-worded, lemmatised and stemmed word tokens per text."""
    return bm25s.tokenize(texts, stopwords=STOPWORDS, stemmer=normalize_words, return_ids=False, show_progress=False)


class LexicalIndex:
    """BM25 scores of a query against every text, in the order the texts were given.

    The BM25 matrix is bm25s's own (a sparse matrix of each token's score in
    each text), saved with the build and memory-mapped on load, so a large
    index loads in the time it takes to map its files. The same matrix says
    which texts hold a token (their score is above 0), which is what IDF
    coverage needs; no token set per text is kept.
    """

    def __init__(self, texts: Iterable[str] = (), *, bm25: bm25s.BM25 | None = None) -> None:
        if bm25 is None:
            bm25 = bm25s.BM25()
            tokens = tokenize(list(texts))
            if tokens:
                bm25.index(tokens, show_progress=False)
            else:
                bm25.scores = {"data": np.zeros(0), "indices": np.zeros(0, np.int32), "indptr": np.zeros(1, np.int32)}
                bm25.scores["num_docs"] = 0
                bm25.vocab_dict = {}
                bm25.nonoccurrence_array = None
        self._bm25 = bm25
        self.size = int(bm25.scores["num_docs"])
        self._vocabulary: dict[str, int] = bm25.vocab_dict
        self._indptr = np.asarray(bm25.scores["indptr"])
        self._indices = bm25.scores["indices"]

    def save(self, folder: Path) -> None:
        """Write the BM25 matrix and vocabulary into `folder` (bm25s's files, no pickle)."""
        self._bm25.save(str(folder), show_progress=False)

    @classmethod
    def load(cls, folder: Path) -> LexicalIndex:
        """Map what save wrote.

        Raises:
            OSError, ValueError: a file is missing or unreadable.
        """
        return cls(bm25=bm25s.BM25.load(str(folder), mmap=True))

    def _known(self, tokens: Iterable[str]) -> list[str]:
        return [token for token in tokens if token in self._vocabulary]

    def scores(self, query_tokens: list[str]) -> np.ndarray:
        """BM25 score of every text for the query tokens (zeros when none is known)."""
        known = self._known(query_tokens)
        if not known:
            return np.zeros(self.size, dtype=np.float32)
        return np.asarray(self._bm25.get_scores(known), dtype=np.float32)

    def weighted_scores(self, query_tokens: list[str], carried: dict[str, float]) -> np.ndarray:
        """BM25 of the query tokens plus each carried token's BM25 times its weight (a follow-up's earlier words)."""
        total = self.scores(query_tokens)
        for weight in sorted(set(carried.values())):
            total = total + weight * self.scores([token for token, w in carried.items() if w == weight])
        return total

    def frequency(self, token: str) -> int:
        """How many texts hold the token."""
        number = self._vocabulary.get(token)
        return 0 if number is None else int(self._indptr[number + 1] - self._indptr[number])

    def idf(self, token: str) -> float:
        """Inverse document frequency as BM25 weighs it; an unseen token weighs the most."""
        frequency = self.frequency(token)
        return math.log(1 + (self.size - frequency + 0.5) / (frequency + 0.5))

    def holding(self, token: str, rows: np.ndarray) -> np.ndarray:
        """For each of these text rows, whether it holds the token."""
        number = self._vocabulary.get(token)
        if number is None or not len(rows):
            return np.zeros(len(rows), dtype=bool)
        return np.isin(rows, self._indices[self._indptr[number] : self._indptr[number + 1]])

    def _weights(self, query_tokens: list[str], carried: dict[str, float] | None) -> dict[str, float]:
        weights = {token: self.idf(token) for token in set(query_tokens)}
        for token, weight in (carried or {}).items():
            weights.setdefault(token, weight * self.idf(token))
        return weights

    def coverages(
        self,
        query_tokens: list[str],
        rows: np.ndarray,
        carried: dict[str, float] | None = None,
        holder: LexicalIndex | None = None,
    ) -> np.ndarray:
        """For each row, the share of the query's IDF weight whose terms it holds (0 to 1).

        IDF is this index's; the rows are texts of `holder` (default: this
        index), so a paragraph can be scored with the sentences' IDF.
        `carried` tokens (a follow-up's earlier words) count with their IDF times their weight.
        """
        rows = np.asarray(rows, dtype=np.int64)
        weights = self._weights(query_tokens, carried)
        total = sum(weights.values())
        shares = np.zeros(len(rows), dtype=np.float64)
        if not total:
            return shares.astype(np.float32)
        for token, weight in weights.items():
            shares += weight * (holder or self).holding(token, rows)
        return (shares / total).astype(np.float32)

    def coverage(self, query_tokens: list[str], present: frozenset[str] | set[str]) -> float:
        """Share of the query's IDF weight whose terms are in `present` (0 to 1)."""
        weights = self._weights(query_tokens, None)
        total = sum(weights.values())
        return sum(w for token, w in weights.items() if token in present) / total if total else 0.0
