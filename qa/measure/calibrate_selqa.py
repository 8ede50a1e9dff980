"""Does fitting the answer confidence on SelQA too make abstention carry to reworded questions?

    python -m qa.measure.calibrate_selqa ../shared/data/squad-v1.1-dev.json \
        --selqa ../shared/data/selqa-ass-dev.json --held ../shared/data/selqa-ass-test.json

The confidence in code (qa/search/confidence.py) is fitted on SQuAD's even
articles, whose questions mostly reuse the article's words. SelQA's were
written about a Wikipedia section, half of them reworded away from it
(`is_paraphrase`). This fits the same logistic model on SQuAD's fitting
questions alone and on them plus SelQA's dev questions, both with the fusion
weights in code, and scores both on data neither saw:

- SQuAD even articles, the next `--limit` questions after the fitting ones;
- SelQA's test questions (`--held`), over the same SelQA corpus.

Positives and negatives are made as calibrate makes them: a question whose
top sentence holds its answer, and the same question with its own document
(article, or section for SelQA) hidden. SQuAD's odd articles are printed
for the record only; nothing is chosen on them.
"""

from __future__ import annotations

import argparse
import json
import random
from pathlib import Path

import numpy as np

from qa.measure.calibrate import Sample, abstention_rates, collect, confidence_data, fit_confidence, squad_splits
from qa.measure.datasets import EvalQuestion, load_selqa, load_squad, write_corpus
from qa.measure.evaluate import auroc
from qa.reader.index import Index
from qa.search.confidence import ConfidenceModel
from qa.search.fusion import FusionWeights


def selqa_samples(paths: list[Path], held: list[Path], work: Path) -> tuple[Index, list[Sample], list[Sample]]:
    """The SelQA corpus (every section of every file) built in `work`, and samples of the fitting and held files."""
    import qa

    documents, _ = load_selqa([*paths, *held])
    write_corpus(documents, work / "selqa-seeds")
    index = qa.build_index(work / "selqa-seeds", work / "selqa-index")
    return index, collect(index, load_selqa(paths)[1]), collect(index, load_selqa(held)[1])


def report(name: str, index: Index, samples: list[Sample], models: dict[str, ConfidenceModel]) -> None:
    """Each model's AUROC and abstention rates on these samples' positives and negatives."""
    features, labels = confidence_data(index, samples, FusionWeights())
    if not (labels == 1).any() or not (labels == 0).any():
        print(f"{name:28s} no positive and negative pairs to score (n={len(labels)})")
        return
    for label, model in models.items():
        rates = abstention_rates(features, labels, model)
        area = auroc(model.probability(features).tolist(), [bool(value) for value in labels])
        shown = "  ".join(f"{key} {value:.3f}" for key, value in rates.items())
        print(f"{name:28s} {label:16s} AUROC {area:.3f}  {shown}  (n={len(labels)})")


def verifier_report(name: str, index: Index, samples: list[Sample]) -> None:
    """The shipped verifier's AUROC on the same positives and negatives: its logit for each top sentence."""
    from qa.search.fusion import fused_scores
    from qa.verify.rerank import candidate_reading
    from qa.verify.scorer import load_verifier

    verifier = load_verifier()
    questions, sentences, labels = [], [], []
    for sample in samples:
        for found, label in ((sample.found, True), (sample.hidden, False)):
            assert found is not None
            top = int(np.argmax(fused_scores(found, FusionWeights())))
            if label and not sample.relevant[top]:
                continue  # as in confidence_data: a positive is a top sentence that answers
            questions.append(sample.question.question)
            sentences.append(candidate_reading(index.sentences, found.rows, verifier.context)(top))
            labels.append(label)
    area = auroc(verifier.logits(questions, sentences).tolist(), labels) if labels else None
    if area is None:
        print(f"{name:28s} no positive and negative pairs to score (n={len(labels)})")
        return
    print(f"{name:28s} {'verifier logit':16s} AUROC {area:.3f}  (n={len(labels)})")


def squad_held_aside(squad: Path, limit: int, seed: int) -> list[EvalQuestion]:
    """Even-article questions after the first `limit` that calibrate fits on (same shuffle)."""
    documents, questions = load_squad(squad)
    random.Random(seed).shuffle(questions)
    order = {name: number for number, name in enumerate(documents)}
    return [q for q in questions if order[q.source] % 2 == 0][limit : 2 * limit]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m qa.measure.calibrate_selqa", description=__doc__.split("\n")[0])
    parser.add_argument("squad", type=Path, help="SQuAD v1.1 JSON file")
    parser.add_argument("--selqa", type=Path, action="append", required=True, help="SelQA file(s) to fit on")
    parser.add_argument("--held", type=Path, action="append", required=True, help="SelQA file(s) to score on")
    parser.add_argument("--work", type=Path, default=Path(".cache/squad"))
    parser.add_argument("--limit", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--verifier", action="store_true", help="also score the shipped verifier (qa/verify/)")
    args = parser.parse_args(argv)

    squad_index, fitting, held_out = squad_splits(args.squad, args.work, args.limit, args.seed)
    squad_fit = collect(squad_index, fitting)
    squad_aside = collect(squad_index, squad_held_aside(args.squad, args.limit, args.seed))
    selqa_index, selqa_fit, selqa_held = selqa_samples(args.selqa, args.held, args.work)

    weights = FusionWeights()
    squad_features, squad_labels = confidence_data(squad_index, squad_fit, weights)
    selqa_features, selqa_labels = confidence_data(selqa_index, selqa_fit, weights)
    models = {
        "in code": ConfidenceModel(),
        "SQuAD": fit_confidence(squad_features, squad_labels),
        "SQuAD + SelQA": fit_confidence(
            np.concatenate([squad_features, selqa_features]), np.concatenate([squad_labels, selqa_labels])
        ),
    }
    for label, model in models.items():
        print(f"{label}: {model}")
    report("SQuAD even, held aside", squad_index, squad_aside, models)
    report("SelQA held", selqa_index, selqa_held, models)
    items = selqa_items(args.held)
    paraphrased = [sample for sample in selqa_held if items[sample.question.id].get("is_paraphrase")]
    report("SelQA held, reworded only", selqa_index, paraphrased, models)
    report("SQuAD odd (record only)", squad_index, collect(squad_index, held_out), models)
    if args.verifier:
        # Only the articles the verifier was never trained on (its report.json names them).
        from qa.verify.scorer import MODEL_DIR

        split = json.loads((MODEL_DIR / "report.json").read_text(encoding="utf-8"))["split"]
        squad_unseen = [s for s in squad_aside if int(s.question.source.split("-")[0]) in split["squad_dev_held"]]
        selqa_unseen = [s for s in selqa_held if items[s.question.id]["article"] in set(split["selqa_held"])]
        verifier_report("SQuAD even, verifier unseen", squad_index, squad_unseen)
        models_unseen = {"in code": ConfidenceModel()}
        report("SQuAD even, verifier unseen", squad_index, squad_unseen, models_unseen)
        verifier_report("SelQA test, verifier unseen", selqa_index, selqa_unseen)
        report("SelQA test, verifier unseen", selqa_index, selqa_unseen, models_unseen)
    return 0


def selqa_items(paths: list[Path]) -> dict[str, dict]:
    """Each SelQA question's raw item, by the id load_selqa gives it (for `is_paraphrase` and `article`)."""
    return {
        f"{path.stem}-{number}": item
        for path in paths
        for number, item in enumerate(json.loads(path.read_text(encoding="utf-8")))
    }


if __name__ == "__main__":
    raise SystemExit(main())
