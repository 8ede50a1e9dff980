"""Other ways the verifier's scores could become the answer's confidence, compared on held-aside data.

    python -m qa.measure.policy_variants --data-dir ../shared/data --work .cache/squad [--seed 0] [--model-dir DIR] [--json FILE]

The same held-aside questions as `qa.measure.calibrate_verifier` (the
verifier's held-aside even SQuAD articles and SelQA articles, each asked as
it is and with its own article hidden; never the odd SQuAD articles or the
seed dev sets) are searched once, with the fusion's best `MAX_DEPTH`
candidates read by the shipped verifier (or `--model-dir`'s), and cached as
JSON in `--work`.
Each variant then changes one thing of the shipped policy:

- the confidence's features: the shipped four (top logit, its lead over the
  second, and that top's own window cosine and paragraph IDF coverage); the
  three shipped before 2026-12-07 (the logit and lead with the fusion's
  log-odds, which describe the fusion's top, not the reranked one shown,
  with weights fitted on SQuAD); the logit and lead alone; or the shipped
  four with one more: the top's share of a softmax over the logits, the
  fusion's log-odds, or the top's paragraph cosine and own coverage;
- the model: logistic (shipped), or gradient-boosted trees, which can learn
  that a high logit matters more when the words differ;
- the fit's weights: every case alike (shipped), or SQuAD and SelQA weighing
  the same in all, so that the reworded SelQA questions count for more;
- the depth: how many of the fusion's candidates the verifier reads (each
  is one more model run per question), with its own best fused weight
  (chosen on the same questions' MRR@10, as calibrate_verifier chooses it).

Each variant's confidence is fitted and judged by 5-fold cross-validation
over questions (a question's own and hidden cases fall in the same fold), so
a variant with more features gains nothing from fitting its own test cases.
Reported per set: the confidence's AUROC, and at the variant's Youden
threshold the share of answerable questions abstained on and of hidden ones
abstained on; and the reranked MRR@10.
"""

from __future__ import annotations

import json
import sys
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np

from qa.checksums import sha256_file
from qa.measure.calibrate_verifier import (
    PARTS,
    SIGNALS,
    Case,
    best_answer_at,
    best_fused_weight,
    held_aside_parser,
    held_selqa,
    held_squad,
    hide_own_source,
    ordered,
    search_cases,
    write_figures,
)
from qa.measure.evaluate import auroc, rank_metrics
from qa.measure.verifier_data import choose_split
from qa.verify.rerank import RerankPolicy, log_odds, top_and_margin
from qa.verify.scorer import MODEL_DIR, MODEL_FILE, load_verifier

MAX_DEPTH = 10
DEPTHS = (1, 2, 3, 4, 5, 6, 8, 10)
FEATURES = (
    "logit, lead, top's cosine and coverage",  # shipped since 2026-12-07
    "logit, lead, fusion",  # shipped before
    "logit, lead",
    "logit, lead, top's cosine and coverage, top share",
    "logit, lead, fusion, top's cosine and coverage",
    "logit, lead, top's cosine and coverage, paragraph cosine, sentence coverage",
)
MODELS = ("logistic", "boosted")
FOLDS = 5


@dataclass(frozen=True)
class Variant:
    features: str = FEATURES[0]
    balanced: bool = False
    depth: int = RerankPolicy.depth
    fused_weight: float = RerankPolicy.fused_weight
    model: str = MODELS[0]


def collect(
    data_dir: Path, work: Path, seed: int, held_articles: int, model_dir: Path = MODEL_DIR
) -> tuple[dict[str, list[Case]], set[str]]:
    """The held-aside cases at MAX_DEPTH by set (SQuAD and SelQA, own and hidden), and the reworded SelQA ids.

    Cached in `work`, under the model's checksum and the seed.
    """
    verifier = load_verifier(model_dir)
    cache = work / f"policy-cases-v3-{sha256_file(model_dir / MODEL_FILE)[:12]}-seed{seed}.json"
    if cache.is_file():
        stored = json.loads(cache.read_text(encoding="utf-8"))
        return {name: [_case(row) for row in rows] for name, rows in stored["sets"].items()}, set(stored["reworded"])
    split = choose_split(data_dir, seed, held_articles)
    index, squad, _ = held_squad(data_dir, split, work)
    selqa = held_selqa(data_dir, split.selqa_held, work)
    sets = {
        "squad own": search_cases(index, verifier, squad, MAX_DEPTH),
        "squad hidden": search_cases(index, verifier, squad, MAX_DEPTH, hide_own_source),
        "selqa own": search_cases(selqa.index, verifier, selqa.questions, MAX_DEPTH),
        "selqa hidden": search_cases(selqa.index, verifier, selqa.questions, MAX_DEPTH, selqa.hide_article),
    }
    rows = {name: [_row(case) for case in cases] for name, cases in sets.items()}
    cache.write_text(json.dumps({"sets": rows, "reworded": sorted(selqa.reworded)}) + "\n", encoding="utf-8")
    # As a later run reads them back (float64, not the verifier's float32), so that both judge the same numbers.
    return {name: [_case(row) for row in named] for name, named in rows.items()}, selqa.reworded


def _row(case: Case) -> dict:
    row = asdict(case)
    return row | {key: np.asarray(row[key]).tolist() for key in ("fused", "logits", "hits", "parts")}


def _case(row: dict) -> Case:
    arrays = {
        key: np.asarray(row[key], dtype=bool if key == "hits" else np.float64)
        for key in ("fused", "logits", "hits", "parts")
    }
    return Case(**(row | arrays))


def at_depth(case: Case, depth: int) -> Case:
    """The case as a verifier reading only the fusion's best `depth` would have seen it."""
    hits = [bool(hit) for hit in case.hits] + case.rest_hits
    return replace(
        case,
        fused=case.fused[:depth],
        logits=case.logits[:depth],
        hits=np.asarray(hits[:depth]),
        rest_hits=hits[depth:],
        parts=None if case.parts is None else case.parts[:depth],
    )


def feature_row(case: Case, variant: Variant) -> tuple[list[float], bool]:
    """The variant's confidence features for a case, and whether its top candidate answers."""
    policy = RerankPolicy(fused_weight=variant.fused_weight)
    ordering = policy.order_scores(case.logits, case.fused)
    top, lead = top_and_margin(case.logits, ordering)
    row = [top, lead]
    if "fusion" in variant.features:
        row.append(log_odds(case.fusion_confidence))
    if "share" in variant.features:
        shares = np.exp(case.logits - case.logits.max())
        row.append(log_odds(float(shares[np.argmax(ordering)] / shares.sum())))
    if "coverage" in variant.features:
        if case.parts is None:
            raise ValueError("a case without its fusion parts: collect it again")
        names = SIGNALS + (("paragraph cosine", "sentence coverage") if "paragraph cosine" in variant.features else ())
        chosen = [PARTS.index(name) for name in names]
        row.extend(float(value) for value in case.parts[int(np.argmax(ordering))][chosen])
    hits, _ = ordered(case, policy)
    return row, bool(case.answerable and hits[0])


def judge(sets: dict[str, list[Case]], reworded: set[str], variant: Variant) -> dict:
    """Cross-validated figures of one variant on SQuAD, SelQA and SelQA's reworded questions."""
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import GroupKFold

    named = [(name, at_depth(case, variant.depth)) for name in sets for case in sets[name]]
    rows, labels = zip(*(feature_row(case, variant) for _, case in named), strict=True)
    features, right = np.asarray(rows), np.asarray(labels)
    selqa = np.asarray([name.startswith("selqa") for name, _ in named])
    weights = np.ones(len(named))
    if variant.balanced:
        weights = np.where(selqa, len(named) / (2 * selqa.sum()), len(named) / (2 * (~selqa).sum()))
    confidence = np.zeros(len(named))
    questions = [case.question_id for _, case in named]
    for train, test in GroupKFold(FOLDS).split(features, right, questions):
        if variant.model == "boosted":  # shallow and few, for some 2,000 cases: a smooth fit, not a memorised one
            model = HistGradientBoostingClassifier(max_depth=3, max_iter=100, learning_rate=0.05, random_state=0)
        else:
            model = LogisticRegression(C=1e4, max_iter=1000)
        model.fit(features[train], right[train], sample_weight=weights[train])
        confidence[test] = model.predict_proba(features[test])[:, 1]
    unanswerable = np.asarray([not case.answerable for _, case in named])
    threshold, _ = best_answer_at(confidence, unanswerable, weights)
    policy = RerankPolicy(fused_weight=variant.fused_weight)
    figures: dict = {
        "variant": asdict(variant),
        "answer_at": threshold,
        "pooled_auroc": auroc(confidence.tolist(), right.tolist()),
    }
    for label, chosen in (
        ("SQuAD", ~selqa),
        ("SelQA", selqa),
        ("SelQA reworded", selqa & np.asarray([case.question_id in reworded for _, case in named])),
    ):
        own, hidden = chosen & ~unanswerable, chosen & unanswerable
        rankings = [
            list(ordered(case, policy)[0]) + case.rest_hits for (_, case), keep in zip(named, own, strict=True) if keep
        ]
        figures[label] = {
            "auroc": auroc(confidence[chosen].tolist(), right[chosen].tolist()),
            "abstains_when_answerable": float((confidence[own] < threshold).mean()),
            "abstains_when_hidden": float((confidence[hidden] < threshold).mean()),
            "mrr@10": rank_metrics(rankings)["mrr@10"],
        }
    return figures


def variants(sets: dict[str, list[Case]]) -> list[Variant]:
    """The shipped policy, then each change of one thing from it (depths with their own best fused weight)."""
    chosen = [Variant(features=f, balanced=b) for f in FEATURES for b in (False, True)]
    chosen += [Variant(features=f, model="boosted") for f in (FEATURES[0], FEATURES[1], FEATURES[5])]
    own = sets["squad own"] + sets["selqa own"]
    for depth in DEPTHS:
        weight, _ = best_fused_weight([at_depth(case, depth) for case in own], RerankPolicy())
        chosen.append(Variant(depth=depth, fused_weight=weight))
    return list(dict.fromkeys(chosen))  # the shipped depth comes up again: once is enough


def table(results: list[dict]) -> str:
    head = "| features | model | balanced | depth | fused weight | answer at | " + " | ".join(
        f"{s} AUROC / abstains answerable / hidden / MRR@10" for s in ("SQuAD", "SelQA", "SelQA reworded")
    )
    lines = [head + " |", "|" + "---|" * (6 + 3)]
    for r in results:
        v = r["variant"]
        cells = [
            v["features"],
            v.get("model", MODELS[0]),
            "yes" if v["balanced"] else "no",
            str(v["depth"]),
            f"{v['fused_weight']:g}",
            f"{r['answer_at']:.2f}",
        ]
        for s in ("SQuAD", "SelQA", "SelQA reworded"):
            f = r[s]
            cells.append(
                f"{f['auroc']:.3f} / {f['abstains_when_answerable']:.1%} / {f['abstains_when_hidden']:.1%} / {f['mrr@10']:.3f}"
            )
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = held_aside_parser("python -m qa.measure.policy_variants", __doc__.split("\n")[0], "whose scores are read")
    args = parser.parse_args(argv)
    sets, reworded = collect(args.data_dir, args.work, args.seed, args.held_squad_articles, args.model_dir)
    results = [judge(sets, reworded, variant) for variant in variants(sets)]
    print(table(results))
    write_figures(args.json, results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
