"""Choose the fusion weights and fit the answer confidence on SQuAD, reproducibly.

    python -m qa.measure.calibrate ../shared/data/squad-v1.1-dev.json [--work DIR] [--limit N] [--seed S]

Articles with an even number form the fitting split; odd-numbered articles are
held out and only scored. Nothing is fitted on the seed's dev questions.

Fusion weights: a grid over the simplex (step 0.05), best mean reciprocal rank
on the fitting split. Confidence: a logistic regression on the top sentence's
cosine and the share of the question's IDF weight its paragraph covers.
Positives are questions whose top sentence holds a gold answer; negatives are
the same questions asked with their own article hidden, so that the best
evidence left comes from other documents: a "not in the sources" question
that still shares words and topic with the corpus.
"""

from __future__ import annotations

import argparse
import itertools
import random
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from qa.measure.datasets import EvalQuestion, load_jsonl, load_squad, write_corpus
from qa.measure.evaluate import holds_answer, rank_metrics
from qa.quotes import QUOTE_MARGIN
from qa.reader.index import Index
from qa.search.candidates import Candidates, gather_candidates
from qa.search.confidence import ConfidenceModel, confidence_features
from qa.search.fusion import FusionWeights, fused_scores, retriever_scores
from qa.search.question import encode_question


@dataclass
class Sample:
    """One question's candidates, which of them hold a gold answer, and confidence features."""

    question: EvalQuestion
    found: Candidates
    relevant: np.ndarray
    tokens: list[str]
    hidden: Candidates | None  # candidates with the question's own article hidden


def collect(index: Index, questions: list[EvalQuestion], hide_own: bool = True, candidates: int = 50) -> list[Sample]:
    """Search each question once with everything and, if `hide_own`, once without its own document."""
    samples = []
    for question in questions:
        query, tokens, _ = encode_question(index, question.question)
        found = gather_candidates(index, query, tokens, candidates)
        hidden = None
        if hide_own:
            hidden = gather_candidates(index, query, tokens, candidates, exclude_source=question.source)
        relevant = np.asarray([holds_answer(index.sentences[int(row)].text, question.answers) for row in found.rows])
        samples.append(Sample(question, found, relevant, tokens, hidden))
    return samples


def ranking(sample: Sample, scores: np.ndarray) -> list[bool]:
    return sample.relevant[np.argsort(-scores, kind="stable")[:10]].tolist()


def evaluate(samples: list[Sample], weights: dict[str, FusionWeights]) -> dict[str, dict[str, float]]:
    """Metrics of BM25 alone, dense alone, plain RRF and each named fusion, on the same candidates.

    Each single retriever's top 10 is exact: its own top 50 is among the candidates.
    """
    results = {
        name: rank_metrics([ranking(s, retriever_scores(s.found, name)) for s in samples])
        for name in ("bm25", "dense", "rrf")
    }
    for name, fusion in weights.items():
        results[name] = rank_metrics([ranking(s, fused_scores(s.found, fusion)) for s in samples])
    return results


def print_table(title: str, results: dict[str, dict[str, float]], count: int) -> None:
    print(f"{title} ({count} questions)")
    for retriever, metrics in results.items():
        print(f"  {retriever:14s} " + "  ".join(f"{k} {v:.3f}" for k, v in metrics.items()))


# In the order of FusionWeights' fields.
_SIGNALS = ("dense", "lexical", "passage_dense", "passage_lexical", "coverage", "dense_window")


def search_weights(samples: list[Sample], step: float = 0.05) -> FusionWeights:
    """The simplex grid point with the best MRR@10 on the samples (ties: the first found)."""
    width = max(len(s.relevant) for s in samples)
    signals = np.zeros((len(samples), width, len(_SIGNALS)), dtype=np.float32)
    relevant = np.zeros((len(samples), width), dtype=bool)
    padding = np.ones((len(samples), width), dtype=bool)
    for number, sample in enumerate(samples):
        size = len(sample.relevant)
        signals[number, :size] = np.stack([getattr(sample.found, name) for name in _SIGNALS], axis=1)
        relevant[number, :size] = sample.relevant
        padding[number, :size] = False
    ticks = round(1 / step)
    grid = (
        np.asarray(
            [p for p in itertools.product(range(ticks + 1), repeat=len(_SIGNALS)) if sum(p) == ticks], dtype=np.float32
        )
        / ticks
    )
    best, best_mrr = grid[0], -1.0
    for first in range(0, len(grid), 128):
        chunk = grid[first : first + 128]
        scores = np.einsum("qcs,ws->wqc", signals, chunk)
        scores[:, padding] = -np.inf
        best_relevant = np.where(relevant, scores, -np.inf).max(axis=2)
        # Ties with an irrelevant sentence count against the weights, so that
        # a score that cannot tell sentences of one paragraph apart never wins.
        level = best_relevant[:, :, None]
        rank = (scores > level).sum(axis=2) + ((scores == level) & ~relevant).sum(axis=2) + 1
        reciprocal = np.where(np.isfinite(best_relevant) & (rank <= 10), 1.0 / rank, 0.0)
        mrr = reciprocal.mean(axis=1)
        if mrr.max() > best_mrr:
            best, best_mrr = chunk[int(mrr.argmax())], float(mrr.max())
    return FusionWeights(*(round(float(w), 4) for w in best))


def confidence_data(index: Index, samples: list[Sample], weights: FusionWeights) -> tuple[np.ndarray, np.ndarray]:
    """Features and labels: answered-correctly tops (1) and own-article-hidden tops (0)."""
    features, labels = [], []
    for sample in samples:
        scores = fused_scores(sample.found, weights)
        if sample.relevant[int(np.argmax(scores))]:
            features.append(confidence_features(index, sample.found, sample.tokens, scores))
            labels.append(1)
        assert sample.hidden is not None, "confidence needs samples collected with hide_own=True"
        features.append(confidence_features(index, sample.hidden, sample.tokens, fused_scores(sample.hidden, weights)))
        labels.append(0)
    return np.asarray(features), np.asarray(labels)


def fit_confidence(features: np.ndarray, labels: np.ndarray) -> ConfidenceModel:
    """A class-balanced logistic regression on the confidence features."""
    from sklearn.linear_model import LogisticRegression

    fitted = LogisticRegression(class_weight="balanced").fit(features, labels)
    return ConfidenceModel(round(float(fitted.intercept_[0]), 3), *(round(float(c), 3) for c in fitted.coef_[0]))


def abstention_rates(features: np.ndarray, labels: np.ndarray, model: ConfidenceModel) -> dict[str, float]:
    """How often the model abstains (P < 0.5) on unanswerable and on answerable questions."""
    abstained = model.probability(features) < 0.5
    return {
        "abstained_when_unanswerable": float(abstained[labels == 0].mean()),
        "abstained_when_answerable": float(abstained[labels == 1].mean()),
    }


def quote_margin_report(samples: list[Sample], margin: float, k: int = 3) -> dict[str, float]:
    """What quoting the other top-k sentences within `margin` of the best one brings.

    Returns the share of questions that get extra quotes, the share of extra
    quotes that hold a gold answer, and how often one does when the best does not.
    """
    with_extra = extra = extra_right = best_wrong = rescued = 0
    for sample in samples:
        scores = fused_scores(sample.found, FusionWeights())
        top = np.argsort(-scores, kind="stable")[:k]
        chosen = [p for p in top[1:] if scores[p] >= margin * scores[top[0]]]
        with_extra += bool(chosen)
        extra += len(chosen)
        extra_right += sum(bool(sample.relevant[p]) for p in chosen)
        if not sample.relevant[top[0]]:
            best_wrong += 1
            rescued += any(bool(sample.relevant[p]) for p in chosen)
    return {
        "answers_with_extra_quotes": with_extra / max(len(samples), 1),
        "extra_quotes_holding_an_answer": extra_right / max(extra, 1),
        "answer_in_an_extra_quote_when_the_best_is_wrong": rescued / max(best_wrong, 1),
    }


def squad_splits(
    squad: Path, work: Path, limit: int, seed: int
) -> tuple[Index, list[EvalQuestion], list[EvalQuestion]]:
    """The SQuAD corpus built in `work`, and `limit` questions shuffled by `seed` from the even
    (fitting) and from the odd (held-out) articles."""
    import qa

    documents, questions = load_squad(squad)
    write_corpus(documents, work / "seeds")
    index = qa.build_index(work / "seeds", work / "index")
    random.Random(seed).shuffle(questions)
    order = {name: number for number, name in enumerate(documents)}
    fitting = [q for q in questions if order[q.source] % 2 == 0][:limit]
    held_out = [q for q in questions if order[q.source] % 2 == 1][:limit]
    return index, fitting, held_out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m qa.measure.calibrate", description=__doc__.split("\n")[0])
    parser.add_argument("squad", type=Path, help="SQuAD v1.1 JSON file")
    parser.add_argument("--work", type=Path, default=Path(".cache/squad"), help="where the corpus and index go")
    parser.add_argument("--limit", type=int, default=1000, help="questions per split")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--dev", type=Path, help="also score a JSONL dev set (question, answer, answerable) over --seeds"
    )
    parser.add_argument("--seeds", type=Path, default=Path("seeds"), help="seeds the --dev questions ask about")
    args = parser.parse_args(argv)

    import qa

    index, fitting, held_out = squad_splits(args.squad, args.work, args.limit, args.seed)
    fit_samples, test_samples = collect(index, fitting), collect(index, held_out)

    weights = search_weights(fit_samples)
    print(f"fusion weights (best MRR@10 on the fitting split): {weights}")
    fusions = {"fused (fitted)": weights, "fused (in code)": FusionWeights()}
    print_table("SQuAD fitting split, even articles", evaluate(fit_samples, fusions), len(fit_samples))
    print_table("SQuAD held-out split, odd articles", evaluate(test_samples, fusions), len(test_samples))
    fitted = fit_confidence(*confidence_data(index, fit_samples, weights))
    print(f"confidence fitted on the fitting split: {fitted}")
    for name, model in (("fitted", fitted), ("in code", ConfidenceModel())):
        rates = abstention_rates(*confidence_data(index, test_samples, weights), model)
        print(f"held-out abstention with {name} confidence: " + "  ".join(f"{k} {v:.3f}" for k, v in rates.items()))
    for margin in (0.85, QUOTE_MARGIN, 0.95):
        report = quote_margin_report(test_samples, margin)
        print(f"held-out, quote margin {margin}: " + "  ".join(f"{k} {v:.3f}" for k, v in report.items()))
    if args.dev:
        dev_index = qa.build_index(args.seeds, args.work / "dev-index")
        dev = [q for q in load_jsonl(args.dev) if q.answerable]
        print_table(
            f"dev set {args.dev.name}, answerable questions",
            evaluate(collect(dev_index, dev, hide_own=False), fusions),
            len(dev),
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
