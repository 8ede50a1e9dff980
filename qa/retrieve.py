"""Candidate generation and fusion of dense and BM25 evidence at sentence and paragraph level."""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass, field

import numpy as np

from qa.errors import BadQuestionError
from qa.index import Index
from qa.lexical import tokenize
from qa.schema import Hit

MAX_QUESTION_CHARS = 1000
# The fusion ("default") and the single-signal baselines it is measured against.
RETRIEVERS = ("bm25", "dense", "rrf", "default")
# Sentences of this many best paragraphs (by each retriever) join the
# candidates, so a sentence that only makes sense in its paragraph can win.
_PASSAGE_CANDIDATES = 10


@dataclass(frozen=True)
class FusionWeights:
    """Weights of the normalised signals in the fused sentence score.

    Dense scores are cosines, already on a fixed scale: of the sentence, of its
    best word window (a long sentence's own vector blurs the clause a question
    is about) and of its paragraph. BM25 scores are divided by the query's best
    BM25 score, because raw BM25 grows with query length and corpus statistics
    and cannot be mixed with cosines as it is. Coverage is the share of the
    question's IDF weight whose terms the sentence contains (0 to 1). Rank
    fusion (RRF) would throw away how far apart the scores are, which is what
    tells a clear winner from a near tie inside one paragraph.

    The weights are the best MRR@10 on a grid, fitted on even-numbered SQuAD
    dev articles and scored on the odd-numbered ones: `python -m qa.calibrate`
    (README, "Retrieval and answering"). Sentence BM25 earns no weight there
    once paragraph BM25 and coverage are in.
    """

    dense_sentence: float = 0.15
    lexical_sentence: float = 0.00
    dense_passage: float = 0.35
    lexical_passage: float = 0.10
    coverage: float = 0.25
    dense_window: float = 0.15


@dataclass(frozen=True)
class ConfidenceModel:
    """Logistic model of P(the top sentence answers the question).

    Its features are the top sentence's best sentence-or-window cosine, the
    share of the question's IDF weight its paragraph covers, and its fused
    score. The coefficients are fitted by `python -m qa.calibrate` on SQuAD dev
    (README, "Retrieval and answering"); refit them whenever FusionWeights change.
    """

    intercept: float = -10.491
    window_cosine: float = 6.282
    paragraph_coverage: float = 5.427
    fused_score: float = 7.119

    def probability(self, features: np.ndarray) -> np.ndarray:
        """P(answered) for rows of (window cosine, paragraph coverage, fused score)."""
        weights = np.asarray([self.window_cosine, self.paragraph_coverage, self.fused_score])
        return 1.0 / (1.0 + np.exp(-(self.intercept + np.asarray(features, dtype=np.float64) @ weights)))


@dataclass
class Retrieval:
    """Ranked hits plus what the answer step needs to judge them."""

    hits: list[Hit]
    confidence: float
    notes: list[str] = field(default_factory=list)


def prepare_question(question: object) -> tuple[str, list[str]]:
    """The question cleaned for search, with notes about anything changed.

    Raises:
        BadQuestionError: not a string, empty, or without a word to search for.
    """
    if not isinstance(question, str):
        raise BadQuestionError("the question must be text")
    # A lone surrogate (a str can hold one, e.g. from bytes that were not UTF-8)
    # cannot be encoded, so the tokenizers and any output would fail on it.
    try:
        question.encode("utf-8")
    except UnicodeEncodeError as error:
        raise BadQuestionError(
            f"the question is not valid text (it holds a lone surrogate, U+{ord(question[error.start]):04X}); "
            "check the encoding it was typed or sent in"
        ) from None
    notes = []
    # Control characters (NUL included) carry no meaning for search.
    cleaned = "".join(" " if unicodedata.category(ch) == "Cc" else ch for ch in question).strip()
    length = len(question)
    if not cleaned:
        raise BadQuestionError("the question is empty; type a question about the sources")
    if not re.search(r"\w", cleaned):
        raise BadQuestionError("the question has no words to search for")
    if len(cleaned) > MAX_QUESTION_CHARS:
        notes.append(
            f"The question was {length:,} characters long; only the first "
            f"{MAX_QUESTION_CHARS:,} were searched."
        )
        cleaned = cleaned[:MAX_QUESTION_CHARS]
    return cleaned, notes


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


def fuse(
    dense_sentence: np.ndarray,
    lexical_sentence: np.ndarray,
    dense_passage: np.ndarray,
    lexical_passage: np.ndarray,
    coverage: np.ndarray,
    dense_window: np.ndarray,
    weights: FusionWeights,
) -> np.ndarray:
    """Weighted sum of the normalised signals, one value per candidate sentence."""
    return (
        weights.dense_sentence * dense_sentence
        + weights.lexical_sentence * lexical_sentence
        + weights.dense_passage * dense_passage
        + weights.lexical_passage * lexical_passage
        + weights.coverage * coverage
        + weights.dense_window * dense_window
    )


def confidence_features(
    index: Index, found: Candidates, tokens: list[str], scores: np.ndarray
) -> tuple[float, float, float]:
    """The top candidate's window cosine, its paragraph's IDF coverage of the question, its fused score."""
    top = int(np.argmax(scores))
    paragraph_tokens = index.passage_lexical.token_sets[int(found.passage_rows[top])]
    coverage = index.sentence_lexical.coverage(tokens, paragraph_tokens)
    return float(found.dense_window[top]), coverage, float(scores[top])


def confidence(features: tuple[float, float, float], model: ConfidenceModel | None = None) -> float:
    """Calibrated probability that the top sentence answers the question."""
    return float((model or ConfidenceModel()).probability(np.asarray([features]))[0])


def _ranks(rows: np.ndarray) -> dict[int, int]:
    return {int(row): rank for rank, row in enumerate(rows, start=1)}


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


def gather_candidates(
    index: Index, query: np.ndarray, tokens: list[str], candidates: int, exclude_source: str | None = None
) -> Candidates:
    """The union of dense, BM25 and best-paragraph candidates, with every signal for each.

    `exclude_source` hides one document, as if it were not indexed (used to
    calibrate how confident the best answer from other documents looks).
    """
    allowed = index.source_mask(exclude_source)
    passage_allowed = index.passage_mask(exclude_source)
    hidden = len(allowed) - int(allowed.sum())
    _, dense_keys = index.sentence_store.search(query, candidates + hidden)
    dense_rows = np.asarray([index.sentence_row[int(key)] for key in dense_keys], dtype=np.int64)
    dense_rows = dense_rows[allowed[dense_rows]][:candidates]
    _, window_keys = index.window_store.search(query, 2 * candidates + hidden)
    window_rows = np.asarray(
        list(dict.fromkeys(index.window_sentence_row[int(key)] for key in window_keys)), dtype=np.int64
    )
    window_rows = window_rows[allowed[window_rows]][:candidates] if window_rows.size else window_rows
    lexical_all = index.sentence_lexical.scores(tokens) * allowed
    lexical_rows = top_rows(lexical_all, candidates)

    passage_lexical_all = max_normalize(index.passage_lexical.scores(tokens) * passage_allowed)
    passage_hidden = len(passage_allowed) - int(passage_allowed.sum())
    _, passage_keys = index.passage_store.search(query, _PASSAGE_CANDIDATES + passage_hidden)
    best_passages = [index.passage_row_by_key[int(key)] for key in passage_keys]
    best_passages = [row for row in best_passages if passage_allowed[row]][:_PASSAGE_CANDIDATES]
    best_passages += [int(row) for row in top_rows(passage_lexical_all, _PASSAGE_CANDIDATES)]
    from_passages = [row for passage in set(best_passages) for row in index.passage_sentence_rows[passage]]

    rows = np.unique(
        np.concatenate([dense_rows, lexical_rows, window_rows, np.asarray(from_passages, dtype=np.int64)])
    )
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
            tokens, [index.sentence_lexical.token_sets[row] for row in rows.tolist()]
        ),
        lexical_raw=lexical_all[rows],
        dense_ranking=dense_rows,
        lexical_ranking=lexical_rows,
    )


def fused_scores(found: Candidates, weights: FusionWeights) -> np.ndarray:
    """The fused score of every candidate."""
    return fuse(
        found.dense,
        found.lexical,
        found.passage_dense,
        found.passage_lexical,
        found.coverage,
        found.dense_window,
        weights,
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


def encode_question(index: Index, question: object) -> tuple[np.ndarray, list[str], list[str]]:
    """The question's vector, BM25 tokens and notes about how it was shortened."""
    text, notes = prepare_question(question)
    query, shortened = index.encoder.encode_query(text)
    if shortened:
        notes.append(
            f"The question is longer than the model reads; it was embedded from its first "
            f"{index.encoder.max_tokens} tokens."
        )
    return query, tokenize([text])[0], notes


def _hits(index: Index, found: Candidates, scores: np.ndarray, weights: FusionWeights, k: int) -> list[Hit]:
    dense_rank, lexical_rank = _ranks(found.dense_ranking), _ranks(found.lexical_ranking)
    passage_scores = weights.dense_passage * found.passage_dense + weights.lexical_passage * found.passage_lexical
    # Every sentence of a paragraph carries that paragraph's score.
    passage_score = dict(zip(found.passage_rows.tolist(), passage_scores.tolist()))
    passage_rank = _ranks(np.asarray(sorted(passage_score, key=lambda p: -passage_score[p])))
    hits = []
    for position in np.argsort(-scores, kind="stable")[:k]:
        row, passage_row = int(found.rows[position]), int(found.passage_rows[position])
        sentence, passage = index.sentences[row], index.passages[passage_row]
        hits.append(
            Hit(
                id=sentence.id,
                text=sentence.text,
                source=sentence.source,
                start=sentence.start,
                end=sentence.end,
                section=sentence.section,
                paragraph=sentence.paragraph,
                line=sentence.line,
                score=round(float(scores[position]), 6),
                dense_rank=dense_rank.get(row),
                lexical_rank=lexical_rank.get(row),
                passage_rank=passage_rank[passage_row],
                dense_score=round(float(found.dense[position]), 6),
                lexical_score=round(float(found.lexical_raw[position]), 6),
                context=passage.text,
                context_start=passage.start,
                page=sentence.page,
            )
        )
    return hits


def reciprocal_rank_fusion(found: Candidates, k: int = 60) -> np.ndarray:
    """Plain RRF of the dense and BM25 rankings, the baseline the fusion must beat.

    k = 60 as in Cormack, Clarke and Buettcher (SIGIR 2009), where it was found
    robust across collections without tuning.
    """
    position = {row: number for number, row in enumerate(found.rows.tolist())}
    scores = np.zeros(len(found.rows))
    for ranked in (found.dense_ranking, found.lexical_ranking):
        for rank, row in enumerate(ranked.tolist(), start=1):
            scores[position[row]] += 1 / (k + rank)
    return scores


def retriever_scores(found: Candidates, retriever: str, weights: FusionWeights | None = None) -> np.ndarray:
    """Scores that order the candidates as one retriever would.

    "default" is the fusion; "bm25", "dense" and their reciprocal rank fusion
    "rrf" are the sentence-level baselines it is measured against. Each baseline's top 10 is exact: its own
    top `candidates` are always among the candidates.
    """
    if retriever == "bm25":
        return found.lexical_raw
    if retriever == "dense":
        return found.dense
    if retriever == "rrf":
        return reciprocal_rank_fusion(found)
    if retriever == "default":
        return fused_scores(found, weights or FusionWeights())
    raise ValueError(f"unknown retriever {retriever!r}; choose one of {', '.join(RETRIEVERS)}")



def rank(
    index: Index,
    found: Candidates,
    tokens: list[str],
    k: int,
    retriever: str = "default",
    weights: FusionWeights | None = None,
) -> Retrieval:
    """The k best candidates by one retriever, with the confidence that the best answers.

    The confidence model was fitted on the fusion's scores, so it is only
    computed for "default"; the baselines get NaN.
    """
    weights = weights or FusionWeights()
    scores = retriever_scores(found, retriever, weights)
    hits = _hits(index, found, scores, weights, k)
    belief = float("nan")
    if retriever == "default":
        belief = confidence(confidence_features(index, found, tokens, scores))
    return Retrieval(hits, belief)


def search(
    index: Index, question: str, k: int = 5, candidates: int = 50, weights: FusionWeights | None = None
) -> Retrieval:
    """The k best sentences for the question, fused from dense and BM25 evidence.

    Raises:
        BadQuestionError: the question is empty or has no words, or k < 1.
    """
    if not isinstance(k, int) or k < 1:
        raise BadQuestionError("k must be a whole number of at least 1")
    query, tokens, notes = encode_question(index, question)
    if not index.sentences:
        return Retrieval([], 0.0, notes)
    found = gather_candidates(index, query, tokens, candidates)
    retrieval = rank(index, found, tokens, k, weights=weights)
    retrieval.notes = notes
    return retrieval
