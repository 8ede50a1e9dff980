"""Candidate sentences from dense, BM25 and best-paragraph search, with every signal fusion weighs.

(Word windows only rescore candidates: searching them found no sentence the
other searches missed, measured by `python -m qa.measure.ablate_build`.)"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from qa.reader.index import Index
from qa.search.followup import Carry, repeat_penalty
from qa.search.lexical_hits import LexicalHits, lexical_hits
from qa.storage.vectors import Scope, VectorStore

# Sentences of this many best paragraphs (by each retriever) join the
# candidates, so a sentence that only makes sense in its paragraph can win.
_PASSAGE_CANDIDATES = 10


def _dense_keys(
    store: VectorStore,
    keys: np.ndarray,
    allowed: np.ndarray | None,
    query: np.ndarray,
    count: int,
    sources: tuple[str | None, frozenset[str] | None],
) -> np.ndarray:
    """Keys of the `count` records nearest the query, only among the `allowed` rows (made from `sources`) when given."""
    if allowed is None:
        return store.search(query, count)[1]
    return store.search_within(query, count, Scope(keys, allowed, *sources))[1]


def _divided_by_max(part: np.ndarray, hits: LexicalHits) -> np.ndarray:
    """`part` (some of the hits' scores) divided by their maximum."""
    top = hits.maximum
    return part / top if top > 0 else np.zeros_like(part)


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
    restricted = exclude_source is not None or only is not None
    allowed = index.source_mask(exclude_source, only) if restricted else None
    passage_allowed = index.passage_mask(exclude_source, only) if restricted else None
    carried = carry.weights if carry else {}
    sources = (exclude_source, only)
    sentence_keys = _dense_keys(index.sentence_store, index.sentence_keys, allowed, query, candidates, sources)
    dense_rows = index.sentence_rows(sentence_keys)
    dense_rows = dense_rows[dense_rows >= 0]
    lexical_all = lexical_hits(index, "sentences", tokens, carried, allowed, sources)
    lexical_rows = lexical_all.top(candidates)

    passage_lexical_all = lexical_hits(index, "passages", tokens, carried, passage_allowed, sources)
    passage_keys = _dense_keys(
        index.passage_store, index.passage_keys, passage_allowed, query, _PASSAGE_CANDIDATES, sources
    )
    best_passages = [int(row) for row in index.passage_rows(passage_keys) if row >= 0]
    best_passages += [int(row) for row in passage_lexical_all.top(_PASSAGE_CANDIDATES)]
    focus = carry.focus_passages if carry else ()
    best_passages += [row for row in focus if passage_allowed is None or passage_allowed[row]]
    from_passages = [index.passage_sentence_rows(passage) for passage in set(best_passages)]

    rows = np.unique(np.concatenate([dense_rows, lexical_rows, *from_passages]).astype(np.int64))
    own_passages = index.sentence_passage_rows[rows]
    unique_passages, inverse = np.unique(own_passages, return_inverse=True)
    dense = index.sentence_store.vectors(index.sentence_keys[rows]) @ query
    lexical_raw = lexical_all.at(rows)
    return Candidates(
        rows=rows,
        passage_rows=own_passages,
        dense=dense,
        dense_window=index.windows.best_cosines(rows, query, dense),
        lexical=_divided_by_max(lexical_raw, lexical_all),
        passage_dense=(index.passage_store.vectors(index.passage_keys[unique_passages]) @ query)[inverse],
        passage_lexical=_divided_by_max(passage_lexical_all.at(own_passages), passage_lexical_all),
        coverage=index.sentence_lexical.coverages(tokens, rows, carried),
        lexical_raw=lexical_raw,
        dense_ranking=dense_rows,
        lexical_ranking=lexical_rows,
        penalty=repeat_penalty(rows, carry),
    )
