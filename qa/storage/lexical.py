"""BM25 over texts with bm25s, rebuilt from stored text at load time (nothing pickled)."""

from __future__ import annotations

import logging
import math
from collections import Counter

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
    """BM25 scores of a query against every text, in the order the texts were given."""

    def __init__(self, texts: list[str]) -> None:
        self.size = len(texts)
        self._bm25 = bm25s.BM25()
        tokens = tokenize(texts) if texts else []
        self.token_sets = [frozenset(row) for row in tokens]
        self._document_frequency = Counter(token for row in self.token_sets for token in row)
        if texts:
            self._bm25.index(tokens, show_progress=False)

    def scores(self, query_tokens: list[str]) -> np.ndarray:
        """BM25 score of every text for the query tokens (zeros when none is known)."""
        known = [token for token in query_tokens if token in self._document_frequency]
        if not known:
            return np.zeros(self.size, dtype=np.float32)
        return np.asarray(self._bm25.get_scores(known), dtype=np.float32)

    def weighted_scores(self, query_tokens: list[str], carried: dict[str, float]) -> np.ndarray:
        """BM25 of the query tokens plus each carried token's BM25 times its weight (a follow-up's earlier words)."""
        total = self.scores(query_tokens)
        for weight in sorted(set(carried.values())):
            total = total + weight * self.scores([token for token, w in carried.items() if w == weight])
        return total

    def idf(self, token: str) -> float:
        """Inverse document frequency as BM25 weighs it; an unseen token weighs the most."""
        frequency = self._document_frequency.get(token, 0)
        return math.log(1 + (self.size - frequency + 0.5) / (frequency + 0.5))

    def coverages(
        self, query_tokens: list[str], token_sets: list[frozenset[str]], carried: dict[str, float] | None = None
    ) -> np.ndarray:
        """For each token set, the share of the query's IDF weight whose terms it holds (0 to 1).

        `carried` tokens (a follow-up's earlier words) count with their IDF times their weight.
        """
        weights = {token: self.idf(token) for token in set(query_tokens)}
        for token, weight in (carried or {}).items():
            weights.setdefault(token, weight * self.idf(token))
        total = sum(weights.values())
        if not total:
            return np.zeros(len(token_sets), dtype=np.float32)
        shares = [sum(w for token, w in weights.items() if token in present) / total for present in token_sets]
        return np.asarray(shares, dtype=np.float32)

    def coverage(self, query_tokens: list[str], present: frozenset[str] | set[str]) -> float:
        """Share of the query's IDF weight whose terms are in `present` (0 to 1)."""
        return float(self.coverages(query_tokens, [frozenset(present)])[0])
