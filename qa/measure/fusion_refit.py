"""Refit the fusion's weights on the verifier's held-aside questions, cross-validated by article.

    [QA_MODEL=DIR] python -m qa.measure.fusion_refit --data-dir ../shared/data --work .cache/squad [--seed 0] [--model-dir DIR] [--json FILE]

The fusion's weights in code (`qa.search.fusion.FusionWeights`) were chosen
by `qa.measure.calibrate` on the even SQuAD articles, with the bundled
embedder's cosines. An embedder fine-tuned on those articles
(`qa.measure.train_embedder`) makes its cosines there too good to fit on, so
this command fits on the questions neither it nor the verifier trained on:
the held-aside SQuAD articles and SelQA articles of `qa.measure.calibrate_verifier`,
never the odd SQuAD articles or the seed dev sets. The embedder is the one
the index in `--work` is built with (`QA_MODEL`, as for `qa build`).

The held-aside articles are dealt into as many folds as there are held-aside
SQuAD articles (one of those per fold, SelQA's in turn). For each fold the
weights are fitted, as `calibrate` fits them (the best MRR@10 on a simplex
grid), on the answerable questions of the other folds, and the fold's
questions are then searched with them, as they are and with their article
hidden, and reread by the verifier. So every question is judged by weights
fitted without its article. Reported per set, beside the weights in code on
the same questions (`policy_variants`' cached cases): the fusion's own
ranking (hit@1 / MRR@10) and, in the shipped policy's form, the verified
answer's AUROC, the share of answerable and of hidden questions abstained on
at its Youden threshold, and its MRR@10 (`policy_variants.judge`).
"""

from __future__ import annotations

import sys
from dataclasses import asdict
from pathlib import Path

from qa.measure.calibrate import Sample, collect, ranking, search_weights
from qa.measure.calibrate_verifier import (
    Case,
    HeldSelqa,
    held_aside_parser,
    held_selqa,
    held_squad,
    hide_own_source,
    search_cases,
    write_figures,
)
from qa.measure.datasets import EvalQuestion
from qa.measure.evaluate import rank_metrics
from qa.measure.policy_variants import MAX_DEPTH, Variant, judge
from qa.measure.policy_variants import collect as collect_cases
from qa.measure.verifier_data import choose_split
from qa.reader.index import Index
from qa.search.fusion import FusionWeights, fused_scores
from qa.verify.scorer import load_verifier

SETS = ("SQuAD", "SelQA", "SelQA reworded")


def folds_by_article(
    squad: list[EvalQuestion], squad_articles: list[str], selqa: list[EvalQuestion], article_of: dict[str, str]
) -> tuple[dict[str, int], dict[str, int]]:
    """The fold of each question (by id), SQuAD's and SelQA's: one held-aside SQuAD article per fold,
    SelQA's articles dealt round in their sorted order. A question's fold is its article's."""
    count = len(squad_articles)
    if count < 2:
        raise ValueError("cross-validation by article needs at least 2 held-aside SQuAD articles")
    squad_fold = {name: number for number, name in enumerate(sorted(squad_articles))}
    selqa_fold = {name: number % count for number, name in enumerate(sorted(set(article_of.values())))}
    return (
        {q.id: squad_fold[q.source] for q in squad},
        {q.id: selqa_fold[article_of[q.source]] for q in selqa},
    )


def fusion_figures(
    samples: list[Sample], weights_of: dict[str, FusionWeights], selqa_ids: set[str], reworded: set[str]
) -> dict:
    """hit@1 and MRR@10 of the fusion alone per set, each question ranked with the weights given for it."""
    figures = {}
    for label in SETS:
        chosen = [
            s
            for s in samples
            if (label == "SQuAD") != (s.question.id in selqa_ids)
            and (label != "SelQA reworded" or s.question.id in reworded)
        ]
        metrics = rank_metrics([ranking(s, fused_scores(s.found, weights_of[s.question.id])) for s in chosen])
        figures[label] = {"hit@1": metrics["hit@1"], "mrr@10": metrics["mrr@10"]}
    return figures


def refit(
    index: Index,
    selqa: HeldSelqa,
    squad_questions: list[EvalQuestion],
    fold_of: dict[str, int],
    verifier_dir: Path,
) -> tuple[list[FusionWeights], list[Sample], dict[str, list[Case]]]:
    """Per fold, the weights fitted on the other folds; every question's fusion sample; and the verifier's cases,
    each question searched with its own fold's weights."""
    verifier = load_verifier(verifier_dir)
    squad_samples = collect(index, squad_questions, hide_own=False)
    selqa_samples = collect(selqa.index, selqa.questions, hide_own=False)
    samples = squad_samples + selqa_samples
    folds = sorted(set(fold_of.values()))
    fitted: list[FusionWeights] = []
    sets: dict[str, list[Case]] = {"squad own": [], "squad hidden": [], "selqa own": [], "selqa hidden": []}
    for fold in folds:
        weights = search_weights([s for s in samples if fold_of[s.question.id] != fold])
        fitted.append(weights)
        print(f"fold {fold}: {weights}", file=sys.stderr, flush=True)
        squad = [q for q in squad_questions if fold_of[q.id] == fold]
        held = [q for q in selqa.questions if fold_of[q.id] == fold]
        sets["squad own"] += search_cases(index, verifier, squad, MAX_DEPTH, weights=weights)
        sets["squad hidden"] += search_cases(index, verifier, squad, MAX_DEPTH, hide_own_source, weights)
        sets["selqa own"] += search_cases(selqa.index, verifier, held, MAX_DEPTH, weights=weights)
        sets["selqa hidden"] += search_cases(selqa.index, verifier, held, MAX_DEPTH, selqa.hide_article, weights)
    return fitted, samples, sets


def main(argv: list[str] | None = None) -> int:
    parser = held_aside_parser("python -m qa.measure.fusion_refit", __doc__.split("\n")[0], "whose scores are read")
    args = parser.parse_args(argv)

    split = choose_split(args.data_dir, args.seed, args.held_squad_articles)
    index, squad, held_articles = held_squad(args.data_dir, split, args.work)
    selqa = held_selqa(args.data_dir, split.selqa_held, args.work)
    squad_fold, selqa_fold = folds_by_article(squad, held_articles, selqa.questions, selqa.article_of)
    fold_of = squad_fold | selqa_fold

    fitted, samples, refitted_sets = refit(index, selqa, squad, fold_of, args.model_dir)
    shipped_sets, reworded = collect_cases(
        args.data_dir, args.work, args.seed, args.held_squad_articles, args.model_dir
    )
    in_code = {q: FusionWeights() for q in fold_of}
    by_fold = {q: fitted[fold] for q, fold in fold_of.items()}
    selqa_ids = set(selqa_fold)
    figures: dict = {
        "folds": [asdict(w) for w in fitted],
        "questions": {"squad": len(squad), "selqa": len(selqa.questions), "selqa_reworded": len(reworded)},
        "weights in code": {
            "fusion": fusion_figures(samples, in_code, selqa_ids, reworded),
            "verified": judge(shipped_sets, reworded, Variant()),
        },
        "refitted by article": {
            "fusion": fusion_figures(samples, by_fold, selqa_ids, reworded),
            "verified": judge(refitted_sets, reworded, Variant()),
        },
    }
    print("| fusion weights | " + " | ".join(f"{s}: fusion hit@1 / MRR@10" for s in SETS), end=" | ")
    print(" | ".join(f"{s}: verified AUROC / abstains answerable / hidden / MRR@10" for s in SETS) + " |")
    print("|" + "---|" * 7)
    for name in ("weights in code", "refitted by article"):
        fusion, verified = figures[name]["fusion"], figures[name]["verified"]
        cells = [f"{fusion[s]['hit@1']:.3f} / {fusion[s]['mrr@10']:.3f}" for s in SETS]
        cells += [
            f"{verified[s]['auroc']:.3f} / {verified[s]['abstains_when_answerable']:.1%}"
            f" / {verified[s]['abstains_when_hidden']:.1%} / {verified[s]['mrr@10']:.3f}"
            for s in SETS
        ]
        print(f"| {name} | " + " | ".join(cells) + " |")
    write_figures(args.json, figures)
    return 0


if __name__ == "__main__":
    sys.exit(main())
