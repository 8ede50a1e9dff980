"""BM25 over texts with bm25s: built with the index, saved beside it and memory-mapped on load (nothing pickled)."""

from __future__ import annotations

import logging
import math
from collections.abc import Iterable
from functools import cached_property
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


class Bm25Part:
    """bm25s's BM25 over one segment's texts (qa/storage/segments.py), in the order they were given.

    The BM25 matrix is bm25s's own (a sparse matrix of each token's score in
    each text, its IDF included), saved with the build and memory-mapped on
    load, so a large index loads in the time it takes to map its files.
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
        self.vocabulary: dict[str, int] = bm25.vocab_dict
        self._indptr = np.asarray(bm25.scores["indptr"])
        self._indices = bm25.scores["indices"]
        self._data = bm25.scores["data"]

    def save(self, folder: Path) -> None:
        """Write the BM25 matrix and vocabulary into `folder` (bm25s's files, no pickle)."""
        self._bm25.save(str(folder), show_progress=False)

    @classmethod
    def load(cls, folder: Path) -> Bm25Part:
        """Map what save wrote.

        Raises:
            OSError, ValueError: a file is missing or unreadable.
        """
        return cls(bm25=bm25s.BM25.load(str(folder), mmap=True))

    def scores(self, tokens: list[str]) -> np.ndarray:
        """BM25 of every text for these tokens, as bm25s scores them (zeros when none is known)."""
        known = [token for token in tokens if token in self.vocabulary]
        if not known:
            return np.zeros(self.size, dtype=np.float32)
        return np.asarray(self._bm25.get_scores(known), dtype=np.float32)

    def postings(self, token: str) -> tuple[np.ndarray, np.ndarray]:
        """The rows that hold the token, and the token's BM25 score in each."""
        number = self.vocabulary.get(token)
        if number is None:
            return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.float32)
        first, last = self._indptr[number], self._indptr[number + 1]
        return self._indices[first:last], self._data[first:last]

    def frequency(self, token: str) -> int:
        """How many texts hold the token."""
        number = self.vocabulary.get(token)
        return 0 if number is None else int(self._indptr[number + 1] - self._indptr[number])

    def tokens(self) -> list[str]:
        """The vocabulary, by token number."""
        names = [""] * len(self.vocabulary)
        for token, number in self.vocabulary.items():
            names[number] = token
        return names

    def text_terms(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Each text's token numbers and their BM25 weights without IDF (the length-normalised term frequency).

        Returns (indptr, numbers, weights): text i holds numbers[indptr[i]:indptr[i + 1]]
        (into tokens()) with those weights. bm25s keeps the matrix by token; this
        is its transpose, each score divided by the token's IDF in this part.
        """
        frequencies = np.diff(self._indptr)
        idf = np.log1p((self.size - frequencies + 0.5) / (frequencies + 0.5))
        numbers = np.repeat(np.arange(len(frequencies)), frequencies)
        weights = np.asarray(self._data, dtype=np.float64) / idf[numbers]
        texts = np.asarray(self._indices, dtype=np.int64)
        order = np.argsort(texts, kind="stable")
        indptr = np.concatenate([[0], np.cumsum(np.bincount(texts, minlength=self.size))])
        return indptr, numbers[order], weights[order]


def _idf(documents: int, frequency: int) -> float:
    """Inverse document frequency as bm25s's default (Lucene's) BM25 weighs it; an unseen token weighs the most."""
    return math.log(1 + (documents - frequency + 0.5) / (frequency + 0.5))


class LexicalIndex:
    """BM25 scores of a query against every text, in row order, over one or more segments' parts.

    With one part, as every small index has, the scores are bm25s's own. A
    large index that an incremental build extended has several
    (qa/storage/segments.py): each part's scores are rescaled, token by
    token, from its own IDF to the IDF of all parts together, as Lucene
    scores its segments with the whole index's statistics. Only the length
    normalisation stays each part's own until its segment is merged. Rows a
    part holds for removed sources are never scored.

    The same matrices say which texts hold a token, which is what IDF
    coverage needs; no token set per text is kept.
    """

    def __init__(
        self,
        texts: Iterable[str] = (),
        *,
        parts: list[Bm25Part] | None = None,
        part_of_row: np.ndarray | None = None,
        part_row: np.ndarray | None = None,
    ) -> None:
        """One part over `texts`, or the given parts with, for each row, its part and its row in that part."""
        self._parts = parts if parts is not None else [Bm25Part(texts)]
        if part_of_row is None or part_row is None:
            if len(self._parts) != 1:
                raise ValueError("several BM25 parts need each row's part and row in it")
            part_of_row = np.zeros(self._parts[0].size, dtype=np.int16)
            part_row = np.arange(self._parts[0].size, dtype=np.int64)
        self.size = len(part_of_row)
        self.parts = self._parts
        # IDF counts every row the parts hold, removed sources' too, as Lucene counts deleted documents until a merge.
        self._documents = sum(part.size for part in self._parts)
        self._part_of_row = np.asarray(part_of_row)
        self._part_row = np.asarray(part_row, dtype=np.int64)
        # Each row's part and row in it, read by the Qdrant store's build (qa/storage/qdrant.py).
        self.part_of_row, self.part_row = self._part_of_row, self._part_row

    @cached_property
    def _placed(self) -> list[tuple[np.ndarray, np.ndarray] | slice]:
        """Where each part's rows go; worked out at the first question, not by a build that only reads the index."""
        return [self._placement(number) for number in range(len(self._parts))]

    @cached_property
    def _direct(self) -> bool:
        """One part read whole and in row order needs no mapping: bm25s's scores are the answer."""
        return len(self._parts) == 1 and self._placed[0] == slice(0, self.size)

    def _placement(self, number: int) -> tuple[np.ndarray, np.ndarray] | slice:
        """Where part `number`'s rows go: a slice when all are live, in order, in a run; else (rows, their part rows)."""
        rows = np.flatnonzero(self._part_of_row == number)
        inside = self._part_row[rows]
        size = self._parts[number].size
        if not size:
            return slice(0, 0)
        in_a_run = len(rows) == size and rows[-1] - rows[0] == size - 1
        if in_a_run and inside[0] == 0 and bool(np.all(np.diff(inside) == 1)):
            return slice(int(rows[0]), int(rows[0]) + size)
        return rows, inside

    def save(self, folder: Path) -> None:
        """Write the one part's files into `folder`."""
        if len(self._parts) != 1:
            raise ValueError("an index of several BM25 parts is saved part by part")
        self._parts[0].save(folder)

    @classmethod
    def load(cls, folder: Path) -> LexicalIndex:
        """Map one part that save wrote.

        Raises:
            OSError, ValueError: a file is missing or unreadable.
        """
        return cls(parts=[Bm25Part.load(folder)])

    def scores(self, query_tokens: list[str]) -> np.ndarray:
        """BM25 score of every text for the query tokens (zeros when none is known)."""
        return self.weighted_scores(query_tokens, {})

    def weighted_scores(self, query_tokens: list[str], carried: dict[str, float]) -> np.ndarray:
        """BM25 of the query tokens plus each carried token's BM25 times its weight (a follow-up's earlier words)."""
        if self._direct:
            part = self._parts[0]
            total = part.scores(query_tokens)
            for weight in sorted(set(carried.values())):
                total = total + weight * part.scores([token for token, w in carried.items() if w == weight])
            return total
        weights: dict[str, float] = {}
        for token in query_tokens:
            weights[token] = weights.get(token, 0.0) + 1.0
        for token, weight in carried.items():
            weights[token] = weights.get(token, 0.0) + weight
        total = np.zeros(self.size, dtype=np.float32)
        for part, placed in zip(self._parts, self._placed, strict=True):
            scores = self._part_scores(part, weights)
            if isinstance(placed, slice):
                total[placed] = scores
            else:
                total[placed[0]] = scores[placed[1]]
        return total

    def _part_scores(self, part: Bm25Part, weights: dict[str, float]) -> np.ndarray:
        """One part's BM25 for weighted tokens, each token's score moved from the part's IDF to the whole index's."""
        rows, values = [], []
        for token, weight in weights.items():
            held, scores = part.postings(token)
            if len(held):
                rescale = self.idf(token) / _idf(part.size, len(held))
                rows.append(held)
                values.append(np.asarray(scores, dtype=np.float64) * (weight * rescale))
        if not rows:
            return np.zeros(part.size, dtype=np.float32)
        return np.bincount(np.concatenate(rows), np.concatenate(values), minlength=part.size).astype(np.float32)

    def frequency(self, token: str) -> int:
        """How many texts hold the token."""
        return sum(part.frequency(token) for part in self._parts)

    def idf(self, token: str) -> float:
        """Inverse document frequency as BM25 weighs it; an unseen token weighs the most."""
        return _idf(self._documents, self.frequency(token))

    def holding(self, token: str, rows: np.ndarray) -> np.ndarray:
        """For each of these text rows, whether it holds the token."""
        rows = np.asarray(rows, dtype=np.int64)
        if self._direct:
            return np.isin(rows, self._parts[0].postings(token)[0])
        held = np.zeros(len(rows), dtype=bool)
        parts = self._part_of_row[rows]
        for number, part in enumerate(self._parts):
            mine = parts == number
            if mine.any():
                held[mine] = np.isin(self._part_row[rows[mine]], part.postings(token)[0])
        return held

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
