"""Candidate sentences from dense, window, BM25 and best-paragraph search, with every signal fusion weighs."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from qa.reader.index import Index
from qa.search.followup import Carry, repeat_penalty

# Sentences of this many best paragraphs (by each retriever) join the
# candidates, so a sentence that only makes sense in its paragraph can win.
_PASSAGE_CANDIDATES = 10


def max_normalize(scores: np.ndarray) -> np.ndarray:
    """Scores divided by their maximum (all zeros stay zeros)."""
    top = float(scores.max()) if scores.size else 0.0
    return scores / top if top > 0 else np.zeros_like(scores)


def top_rows(scores: np.ndarray, count: int) -> np.ndarray:
    """Rows of the `count` highest positive scores, best first."""
    positive = np.flatnonzero(scores > 0)
    if positive.size > count:
        positive = positive[np.argpartition(-scores[positive], count - 1)[:count]]
    return positive[np.argsort(-scores[positive], kind="stable")]


@dataclass
class Candidates:
    """Candidate sentences and every signal the fusion weighs, aligned by position."""

    rows: np.ndarray  # sentence rows
    passage_rows: np.ndarray  # each candidate's paragraph row
    dense: np.ndarray  # sentence cosine
    lexical: np.ndarray  # sentence BM25 / best sentence BM25
    passage_dense: np.ndarray  # paragraph cosine
    passage_lexical: np.ndarray  # paragraph BM25 / best paragraph BM25
    coverage: np.ndarray  # share of the question's IDF weight in the sentence
    dense_window: np.ndarray  # best cosine of the sentence or any of its word windows
    lexical_raw: np.ndarray  # sentence BM25 as computed
    dense_ranking: np.ndarray  # sentence rows, best first, as dense search returned them
    lexical_ranking: np.ndarray  # sentence rows, best first, by BM25
    penalty: np.ndarray | None = None  # fused-score penalty per candidate (a follow-up's already quoted sentences)


def gather_candidates(
    index: Index,
    query: np.ndarray,
    tokens: list[str],
    candidates: int,
    exclude_source: str | None = None,
    only: frozenset[str] | None = None,
    carry: Carry | None = None,
) -> Candidates:
    """The union of dense, BM25 and best-paragraph candidates, with every signal for each.

    `exclude_source` hides one document, as if it were not indexed (used to
    calibrate how confident the best answer from other documents looks);
    `only` keeps the sources named (qa/search/scope.py), every other one
    hidden the same way. `carry` is what earlier turns lend a follow-up
    (qa/search/followup.py): weighted BM25 tokens and the previous answer's paragraphs.
    """
    allowed = index.source_mask(exclude_source, only)
    passage_allowed = index.passage_mask(exclude_source, only)
    carried = carry.weights if carry else {}
    hidden = len(allowed) - int(allowed.sum())
    _, dense_keys = index.sentence_store.search(query, candidates + hidden)
    dense_rows = np.asarray([index.sentence_row[int(key)] for key in dense_keys], dtype=np.int64)
    dense_rows = dense_rows[allowed[dense_rows]][:candidates]
    _, window_keys = index.window_store.search(query, 2 * candidates + hidden)
    window_rows = np.asarray(
        list(dict.fromkeys(index.window_sentence_row[int(key)] for key in window_keys)), dtype=np.int64
    )
    window_rows = window_rows[allowed[window_rows]][:candidates] if window_rows.size else window_rows
    lexical_all = index.sentence_lexical.weighted_scores(tokens, carried) * allowed
    lexical_rows = top_rows(lexical_all, candidates)

    passage_lexical_all = max_normalize(index.passage_lexical.weighted_scores(tokens, carried) * passage_allowed)
    passage_hidden = len(passage_allowed) - int(passage_allowed.sum())
    _, passage_keys = index.passage_store.search(query, _PASSAGE_CANDIDATES + passage_hidden)
    best_passages = [index.passage_row_by_key[int(key)] for key in passage_keys]
    best_passages = [row for row in best_passages if passage_allowed[row]][:_PASSAGE_CANDIDATES]
    best_passages += [int(row) for row in top_rows(passage_lexical_all, _PASSAGE_CANDIDATES)]
    best_passages += [row for row in (carry.focus_passages if carry else ()) if passage_allowed[row]]
    from_passages = [row for passage in set(best_passages) for row in index.passage_sentence_rows[passage]]

    rows = np.unique(np.concatenate([dense_rows, lexical_rows, window_rows, np.asarray(from_passages, dtype=np.int64)]))
    own_passages = index.sentence_passage_rows[rows]
    unique_passages, inverse = np.unique(own_passages, return_inverse=True)
    dense = index.sentence_store.vectors(index.sentence_keys[rows]) @ query
    return Candidates(
        rows=rows,
        passage_rows=own_passages,
        dense=dense,
        dense_window=_best_window_cosine(index, rows, query, dense),
        lexical=max_normalize(lexical_all)[rows],
        passage_dense=(index.passage_store.vectors(index.passage_keys[unique_passages]) @ query)[inverse],
        passage_lexical=passage_lexical_all[own_passages],
        coverage=index.sentence_lexical.coverages(
            tokens, [index.sentence_lexical.token_sets[row] for row in rows.tolist()], carried
        ),
        lexical_raw=lexical_all[rows],
        dense_ranking=dense_rows,
        lexical_ranking=lexical_rows,
        penalty=repeat_penalty(rows, carry),
    )


def _best_window_cosine(index: Index, rows: np.ndarray, query: np.ndarray, dense: np.ndarray) -> np.ndarray:
    """For each sentence row, the larger of its own cosine and its best window's."""
    keys = [index.window_keys_by_sentence[int(row)] for row in rows]
    flat = np.concatenate(keys) if keys else np.zeros(0, dtype=np.int64)
    best = dense.copy()
    if flat.size:
        cosines = index.window_store.vectors(flat) @ query
        owners = np.repeat(np.arange(len(rows)), [len(k) for k in keys])
        np.maximum.at(best, owners, cosines)
    return best
