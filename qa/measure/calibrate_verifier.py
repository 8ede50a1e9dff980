"""Fit how the verifier's scores order the fusion's candidates and become the answer's confidence.

    python -m qa.measure.calibrate_verifier --data-dir ../shared/data --work .cache/squad [--seed 0] [--model-dir DIR]

Only the verifier's held-aside SQuAD articles are asked (the even-numbered dev
articles that `qa.measure.train_verifier` drew with the same seed and never
trained on); odd-numbered SQuAD articles and the seed's dev sets are never
asked. The questions are searched over the whole 48-article corpus `qa eval`
uses (cached in `--work`), once as they are and once with their own article
hidden, so that the best evidence left comes from elsewhere and does not answer.

SQuAD's questions mostly reuse their article's words, so on them alone the fit
learns to trust word overlap (the top sentence's paragraph coverage) and
hardly the verifier. SelQA's held-aside articles (also never trained on; about half their
questions reworded away from the text, `is_paraphrase`) are therefore asked
the same way: their sections are indexed as a corpus of their own (cached in
`--work`/selqa-held-*), and each question is searched once as it is and once
with every section of its article hidden. The fused weight is chosen on the
answerable questions of both, and the confidence fitted on both. The answer
threshold (`answer_at`) is then the one with the largest Youden's J on both:
the share of answerable questions answered minus the share of hidden ones.

It prints the fitted `RerankPolicy` and what it does on that data, and
changes nothing: the constants live in qa/verify/rerank.py.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from qa.checksums import sha256_file
from qa.config import Settings
from qa.measure.calibrate_selqa import selqa_items
from qa.measure.datasets import EvalQuestion, load_selqa, load_squad, write_corpus
from qa.measure.evaluate import (
    auroc,
    coverage_at_precision,
    expected_calibration_error,
    holds_answer,
    prepare,
    rank_metrics,
)
from qa.measure.verifier_data import SELQA, SQUAD_DEV, Split, choose_split
from qa.reader.index import Index
from qa.search.candidates import gather_candidates
from qa.search.confidence import (
    FUSION_ANSWER_AT,
    FUSION_UNSURE_AT,
    candidate_signals,
    confidence,
    confidence_features,
)
from qa.search.fusion import FusionWeights, fused_scores
from qa.search.question import encode_question
from qa.verify.rerank import RerankPolicy, candidate_reading, top_and_margin
from qa.verify.scorer import MODEL_DIR, MODEL_FILE, Verifier, load_verifier

FUSED_WEIGHTS = (0.0, 1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0)


@dataclass
class Case:
    """One question's candidates as the verifier reads them: fused scores, logits, which hold the answer."""

    fused: np.ndarray  # of the reread candidates, in the fusion's order
    logits: np.ndarray
    hits: np.ndarray  # bool per reread candidate
    rest_hits: list[bool]  # the candidates below the reread ones, in the fusion's order
    answerable: bool
    fusion_confidence: float
    question_id: str = ""
    # Per reread candidate, in the fusion's order (PARTS): its window cosine, its paragraph's IDF coverage of
    # the question and its fused score (the fusion confidence's features), its paragraph's cosine, its own coverage.
    parts: np.ndarray | None = None


PARTS = ("window cosine", "paragraph coverage", "fused score", "paragraph cosine", "sentence coverage")
# The parts the shipped confidence reads of the top sentence (RerankPolicy.window_cosine, .paragraph_coverage):
# what candidate_signals gives, in its order, and the first two of PARTS.
SIGNALS = ("window cosine", "paragraph coverage")


@dataclass(frozen=True)
class Bands:
    """Where a confidence answers, and from where it is unsure."""

    answer_at: float
    unsure_at: float


Hide = Callable[[EvalQuestion], dict]


def hide_own_source(question: EvalQuestion) -> dict:
    """gather_candidates' arguments that hide the question's own document (a SQuAD article)."""
    return {"exclude_source": question.source}


def search_cases(
    index: Index,
    verifier: Verifier,
    questions: list[EvalQuestion],
    depth: int,
    hide: Hide | None = None,
    weights: FusionWeights | None = None,
) -> list[Case]:
    """Each question searched with the fusion and its best `depth` candidates reread; `hide` makes it unanswerable.

    `weights` are the fusion's (default: those in code). The fusion's own confidence (`Case.fusion_confidence`)
    was fitted for the weights in code, and is given as it would be at question time.
    """
    cases = []
    for question in questions:
        query, tokens, _ = encode_question(index, question.question)
        found = gather_candidates(index, query, tokens, 50, **(hide(question) if hide else {}))
        if not len(found.rows):  # nothing left to search: "not found" for certain, nothing to learn from
            continue
        fused = fused_scores(found, weights or FusionWeights())
        prior = confidence(confidence_features(index, found, tokens, fused))
        order = np.argsort(-fused, kind="stable")
        texts = [index.sentences[int(found.rows[i])].text for i in order]
        hits = [holds_answer(text, question.answers) for text in texts]
        read = candidate_reading(index.sentences, found.rows[order], verifier.context)
        logits = verifier.logits(
            [question.question] * min(depth, len(texts)), [read(i) for i in range(min(depth, len(texts)))]
        )
        top = order[:depth]
        # The shipped confidence's two signals come from the very function question time calls (qa.search.ranking).
        signals = np.asarray([candidate_signals(index, found, tokens, int(position)) for position in top])
        parts = np.column_stack([signals, fused[top], found.passage_dense[top], found.coverage[top]])
        cases.append(
            Case(fused[top], logits, np.asarray(hits[:depth]), hits[depth:], hide is None, prior, question.id, parts)
        )
    return cases


@dataclass
class HeldSelqa:
    """The held-aside SelQA articles' sections indexed as one corpus, and their questions."""

    index: Index
    questions: list[EvalQuestion]
    article_of: dict[str, str]  # each section's (source's) article
    reworded: set[str]  # ids of the questions marked `is_paraphrase`

    def hide_article(self, question: EvalQuestion) -> dict:
        """gather_candidates' arguments that hide every section of the question's article."""
        article = self.article_of[question.source]
        return {"only": frozenset(source for source, other in self.article_of.items() if other != article)}


def held_selqa(data_dir: Path, held_articles: list[str], work: Path) -> HeldSelqa:
    """Index the sections of the held-aside SelQA articles (cached in `work`) and gather their questions."""
    import qa

    paths = [data_dir / name for name in SELQA]
    items = selqa_items(paths)
    held = set(held_articles)
    documents, questions = load_selqa(paths)
    questions = [q for q in questions if items[q.id]["article"] in held]
    source_of = {text.split("\n", 1)[0]: name for name, text in documents.items()}
    # Every section of a held article, asked about or not, so that hiding an article hides all of it.
    article_of = {
        source_of[f"{item['article']} - {item['section']}"]: item["article"]
        for item in items.values()
        if item["article"] in held
    }
    write_corpus({source: documents[source] for source in sorted(article_of)}, work / "selqa-held-seeds")
    index = qa.build_index(work / "selqa-held-seeds", work / "selqa-held-index")
    reworded = {q.id for q in questions if items[q.id].get("is_paraphrase")}
    return HeldSelqa(index, questions, article_of, reworded)


def held_squad(data_dir: Path, split: Split, work: Path) -> tuple[Index, list[EvalQuestion], list[str]]:
    """The whole SQuAD dev corpus `qa eval` uses (indexed and cached in `work`), the questions of the
    split's held-aside articles, and those articles' names."""
    assert all(position % 2 == 0 for position in split.squad_dev_held), "held-aside SQuAD articles must be even"
    index, questions = prepare(data_dir / SQUAD_DEV, Settings(), work)
    names = list(load_squad(data_dir / SQUAD_DEV)[0])
    held = [names[position] for position in split.squad_dev_held]
    return index, [q for q in questions if q.source in set(held)], held


def ordered(case: Case, policy: RerankPolicy) -> tuple[np.ndarray, np.ndarray]:
    """The reread candidates' hits and logits in the policy's order."""
    order = np.argsort(-policy.order_scores(case.logits, case.fused), kind="stable")
    return case.hits[order], case.logits[order]


def features(cases: list[Case], policy: RerankPolicy) -> tuple[np.ndarray, np.ndarray]:
    """(top logit, lead over the second, the top's window cosine and paragraph coverage) per case; is the top right.

    "The top" is the candidate the policy puts first, the one an answer shows.
    """
    rows, labels = [], []
    for case in cases:
        hits, _ = ordered(case, policy)
        ordering = policy.order_scores(case.logits, case.fused)
        top, margin = top_and_margin(case.logits, ordering)
        if case.parts is None:
            raise ValueError("a case without its fusion signals (search_cases makes them)")
        cosine, coverage = case.parts[int(np.argmax(ordering))][[PARTS.index(name) for name in SIGNALS]]
        rows.append((top, margin, float(cosine), float(coverage)))
        labels.append(bool(case.answerable and hits[0]))  # never right when nothing answers
    return np.asarray(rows), np.asarray(labels)


def best_fused_weight(cases: list[Case], base: RerankPolicy) -> tuple[float, dict[float, float]]:
    """The fused weight with the best MRR@10 over the answerable SQuAD cases."""
    mrr = {}
    for weight in FUSED_WEIGHTS:
        policy = replace(base, fused_weight=weight)
        rankings = [list(ordered(c, policy)[0]) + c.rest_hits for c in cases if c.answerable]
        mrr[weight] = rank_metrics(rankings)["mrr@10"]
    return max(mrr, key=lambda weight: (mrr[weight], -weight)), mrr


def fit_confidence(rows: np.ndarray, labels: np.ndarray, base: RerankPolicy) -> RerankPolicy:
    from sklearn.linear_model import LogisticRegression

    model = LogisticRegression(C=1e4, max_iter=1000).fit(rows, labels)
    top, margin, cosine, coverage = (round(float(value), 3) for value in model.coef_[0])
    intercept = round(float(model.intercept_[0]), 3)
    return replace(
        base, intercept=intercept, top_logit=top, margin=margin, window_cosine=cosine, paragraph_coverage=coverage
    )


THRESHOLDS = np.round(np.arange(0.05, 0.951, 0.01), 2)


def confidences(rows: np.ndarray, policy: RerankPolicy) -> np.ndarray:
    """The policy's confidence for each row of features()."""
    return np.asarray([policy.confidence(*(float(value) for value in row)) for row in rows])


def best_answer_at(
    values: np.ndarray, unanswerable: np.ndarray, weights: np.ndarray | None = None
) -> tuple[float, float]:
    """The threshold that best tells answerable questions from unanswerable ones, and its Youden's J.

    J is the share of answerable questions answered minus the share of
    unanswerable ones answered (each case counting by its weight, if given);
    ties go to the higher threshold.
    """
    answerable_weights = None if weights is None else weights[~unanswerable]
    unanswerable_weights = None if weights is None else weights[unanswerable]
    scored = []
    for t in THRESHOLDS:
        j = np.average(values[~unanswerable] >= t, weights=answerable_weights)
        j -= np.average(values[unanswerable] >= t, weights=unanswerable_weights)
        scored.append((round(float(j), 9), float(t)))
    j, threshold = max(scored)
    return threshold, round(j, 4)


def with_thresholds(policy: RerankPolicy, answer_at: float) -> RerankPolicy:
    """The policy answering from `answer_at`, with its unsure band the same share of it as the fusion's."""
    unsure_at = round(answer_at * FUSION_UNSURE_AT / FUSION_ANSWER_AT, 3)
    return replace(policy, answer_at=answer_at, unsure_at=unsure_at)


def report(
    name: str, values: np.ndarray, labels: np.ndarray, policy: RerankPolicy | Bands, unanswerable: np.ndarray
) -> dict:
    """A confidence's figures on one set: `values` per case, answered from `policy.answer_at`."""
    band = (values >= policy.unsure_at) & (values < policy.answer_at)
    answered = values >= policy.answer_at
    return {
        "set": name,
        "cases": len(labels),
        "answer_at": policy.answer_at,
        "auroc": auroc(values.tolist(), labels.tolist()),
        "ece": expected_calibration_error(values.tolist(), labels.tolist()),
        "coverage_at_90_precision": coverage_at_precision(values.tolist(), labels.tolist()),
        "abstained_when_answerable": float((~answered[~unanswerable]).mean()) if (~unanswerable).any() else None,
        "abstained_when_unanswerable": float((~answered[unanswerable]).mean()) if unanswerable.any() else None,
        "precision_of_answers": float(labels[answered].mean()) if answered.any() else None,
        "right_among_unsure": float(labels[band].mean()) if band.any() else None,
        "unsure": int(band.sum()),
    }


def held_aside_parser(prog: str, description: str, model_use: str, indexes: bool = True) -> argparse.ArgumentParser:
    """The options of the tools that ask the verifier's held-aside questions (this one, policy_variants, embedders).

    `indexes` adds --work, for the tools that search an index of the held-aside corpora.
    """
    parser = argparse.ArgumentParser(prog=prog, description=description)
    parser.add_argument(
        "--data-dir", type=Path, required=True, help="folder with squad-v1.1-dev.json and the SelQA files"
    )
    if indexes:
        parser.add_argument(
            "--work", type=Path, default=Path(".cache/squad"), help="the SQuAD corpus and index qa eval caches"
        )
    parser.add_argument("--seed", type=int, default=0, help="the seed train_verifier drew its held-aside split with")
    parser.add_argument(
        "--held-squad-articles", type=int, default=4, help="even dev articles train_verifier held aside (its default)"
    )
    parser.add_argument(
        "--model-dir",
        type=Path,
        default=MODEL_DIR,
        help=f"the verifier {model_use} (default: the shipped one; a train_verifier --out folder to try another)",
    )
    parser.add_argument("--json", type=Path, help="also write the figures here")
    return parser


def write_figures(path: Path | None, figures: object) -> None:
    """Write the figures as indented JSON to `path` (the held-aside tools' --json), if one was given."""
    if path:
        path.write_text(json.dumps(figures, indent=2) + "\n", encoding="utf-8")


def main(argv: list[str] | None = None) -> int:
    parser = held_aside_parser("python -m qa.measure.calibrate_verifier", __doc__.split("\n")[0], "to fit for")
    args = parser.parse_args(argv)

    verifier = load_verifier(args.model_dir)  # first, so that a wrong --model-dir fails before any indexing
    split = choose_split(args.data_dir, args.seed, args.held_squad_articles)
    index, held_questions, _ = held_squad(args.data_dir, split, args.work)
    depth = RerankPolicy().depth
    squad_own = search_cases(index, verifier, held_questions, depth)
    squad_hidden = search_cases(index, verifier, held_questions, depth, hide_own_source)
    selqa = held_selqa(args.data_dir, split.selqa_held, args.work)
    selqa_own = search_cases(selqa.index, verifier, selqa.questions, depth)
    selqa_hidden = search_cases(selqa.index, verifier, selqa.questions, depth, selqa.hide_article)
    own = squad_own + selqa_own
    everything = own + squad_hidden + selqa_hidden

    weight, mrr = best_fused_weight(own, RerankPolicy())
    base = RerankPolicy(fused_weight=weight)
    rows, labels = features(everything, base)
    fitted = fit_confidence(rows, labels, base)
    unanswerable_all = np.asarray([not case.answerable for case in everything])
    answer_at, youden = best_answer_at(confidences(rows, fitted), unanswerable_all)
    policy = with_thresholds(fitted, answer_at)
    # The fusion's confidence at its own thresholds, for comparison.
    fusion_only = Bands(FUSION_ANSWER_AT, FUSION_UNSURE_AT)
    sets = {
        "SQuAD held-aside articles": (squad_own, squad_hidden),
        "SelQA held-aside articles": (selqa_own, selqa_hidden),
        "SelQA held-aside, reworded only": (
            [c for c in selqa_own if c.question_id in selqa.reworded],
            [c for c in selqa_hidden if c.question_id in selqa.reworded],
        ),
    }
    figures: dict = {
        "split": split.to_dict(),
        "questions": {
            "squad": len(held_questions),
            "selqa": len(selqa.questions),
            "selqa_reworded": len(selqa.reworded),
        },
        "fused_weight_mrr@10": mrr,
        "answer_at_youden_j": youden,
        "policy": policy.__dict__,
        "model_sha256": sha256_file(args.model_dir / MODEL_FILE),
    }
    for name, (answerable, hidden) in sets.items():
        cases = answerable + hidden
        set_rows, set_labels = features(cases, base)
        unanswerable = np.asarray([not case.answerable for case in cases])
        # The fusion's confidence is scored against its own top, in the fusion's order.
        fusion_values = np.asarray([case.fusion_confidence for case in cases])
        fusion_labels = np.asarray([bool(case.answerable and case.hits[0]) for case in cases])
        figures[name] = {
            "fusion_order": rank_metrics([[bool(h) for h in c.hits] + c.rest_hits for c in answerable]),
            "reranked": rank_metrics([list(ordered(c, policy)[0]) + c.rest_hits for c in answerable]),
            "verified": report("verifier", confidences(set_rows, policy), set_labels, policy, unanswerable),
            "fusion_alone": report("fusion's confidence", fusion_values, fusion_labels, fusion_only, unanswerable),
        }
    print(json.dumps(figures, indent=2))
    print(f"\nRerankPolicy({', '.join(f'{k}={v!r}' for k, v in policy.__dict__.items())})", file=sys.stderr)
    print(f'FITTED_FOR = "{figures["model_sha256"]}"', file=sys.stderr)
    write_figures(args.json, figures)
    return 0


if __name__ == "__main__":
    sys.exit(main())
