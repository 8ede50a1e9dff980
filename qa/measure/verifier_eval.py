"""The verifier's held-aside figures: sentence selection, reranking the fusion, abstention AUROC, latency.

Everything here is measured on the held-aside split only (a few even SQuAD
dev articles and about 15% of SelQA's articles); odd SQuAD dev articles and
the seed's dev sets are never read. A hit is a sentence that contains a gold
answer string, case-insensitive (`qa.measure.evaluate.holds_answer`), as in `qa eval`.
"""

from __future__ import annotations

import random
import shutil
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from qa.measure import evaluate
from qa.measure.evaluate import rank_metrics
from qa.measure.verifier_data import Group, answer_removed

# A function from (questions, sentences) to one logit per pair.
Scorer = Callable[[list[str], list[str]], np.ndarray]
_CHUNK = 64


def checkpoint_groups(held: list[Group], seed: int, count: int = 200) -> list[Group]:
    """A seeded sample of held-aside groups with an answer: what checkpoints are chosen on."""
    answerable = [g for g in held if any(g.labels)]
    return random.Random(seed).sample(answerable, min(count, len(answerable)))


def score_all(scorer: Scorer, questions: list[str], sentences: list[str]) -> np.ndarray:
    """Logits of many pairs, scored in chunks of similar length (less padding), in input order."""
    order = sorted(range(len(questions)), key=lambda i: len(questions[i]) + len(sentences[i]))
    logits = np.zeros(len(questions), dtype=np.float32)
    for first in range(0, len(order), _CHUNK):
        chosen = order[first : first + _CHUNK]
        logits[chosen] = scorer([questions[i] for i in chosen], [sentences[i] for i in chosen])
    return logits


def cached(scorer: Scorer) -> Scorer:
    """The scorer with a memory of the pairs it has scored (the report scores many pairs twice)."""
    memory: dict[tuple[str, str], float] = {}

    def score(questions: list[str], sentences: list[str]) -> np.ndarray:
        missing = list(dict.fromkeys(p for p in zip(questions, sentences, strict=True) if p not in memory))
        if missing:
            fresh = scorer([q for q, _ in missing], [s for _, s in missing])
            memory.update(zip(missing, fresh.tolist(), strict=True))
        return np.asarray([memory[p] for p in zip(questions, sentences, strict=True)], dtype=np.float32)

    return score


def group_logits(scorer: Scorer, groups: list[Group]) -> list[np.ndarray]:
    questions = [g.question for g in groups for _ in g.sentences]
    sentences = [s for g in groups for s in g.sentences]
    flat = score_all(scorer, questions, sentences)
    parts, first = [], 0
    for group in groups:
        parts.append(flat[first : first + len(group.sentences)])
        first += len(group.sentences)
    return parts


def selection_accuracy(groups: list[Group], scorer: Scorer) -> float:
    """Share of groups whose best-scored sentence is an answering one."""
    parts = group_logits(scorer, groups)
    right = sum(bool(g.labels[int(np.argmax(p))]) for g, p in zip(groups, parts, strict=True))
    return right / max(len(groups), 1)


def torch_scorer(model: Any, tok: Any, max_length: int) -> Scorer:
    import torch

    from qa.measure.verifier_model import encode_pairs

    def score(questions: list[str], sentences: list[str]) -> np.ndarray:
        model.eval()
        with torch.no_grad():
            return model(**encode_pairs(tok, questions, sentences, max_length)).numpy()

    return score


def auroc(positives: list[float], negatives: list[float]) -> float | None:
    """Area under the ROC curve of positives against negatives (ties count half); None without both."""
    return evaluate.auroc([*positives, *negatives], [True] * len(positives) + [False] * len(negatives))


def rerank_figures(scorer: Scorer, held_squad: list[Group], mined: dict[str, dict]) -> dict:
    """Fused order vs reranked order of the fusion's top 20, and top scores for abstention."""
    entries = [mined[g.id] for g in held_squad if g.id in mined]
    top_logits = _entry_logits(scorer, entries, "top")
    hidden_logits = _entry_logits(scorer, entries, "hidden")
    fused: list[list[bool]] = []
    reranked: list[list[bool]] = []
    right: list[float] = []
    wrong: list[float] = []
    hidden: list[float] = []
    for entry, logits, hidden_part in zip(entries, top_logits, hidden_logits, strict=True):
        hits = [c["hit"] for c in entry["top"]]
        order = np.argsort(-logits, kind="stable")
        fused.append(hits[:10])
        reranked.append([hits[i] for i in order[:10]])
        (right if hits[int(order[0])] else wrong).append(float(logits.max()))
        hidden.append(float(hidden_part.max()))
    return {
        "questions": len(entries),
        "fused": rank_metrics(fused),
        "reranked": rank_metrics(reranked),
        "hit_in_top20": sum(any(c["hit"] for c in e["top"]) for e in entries) / max(len(entries), 1),
        "scores": {"right": right, "wrong": wrong, "hidden": hidden},
    }


def _entry_logits(scorer: Scorer, entries: list[dict], key: str) -> list[np.ndarray]:
    groups = [
        Group("", e["question"], [c["text"] for c in e.get(key, [])], [0] * len(e.get(key, [])), "", "")
        for e in entries
    ]
    return group_logits(scorer, groups)


def selqa_abstention(scorer: Scorer, held: list[Group]) -> dict:
    """Top scores of held-aside SelQA groups: answered right, answered wrong, answers removed."""
    answerable = [g for g in held if g.dataset == "selqa" and any(g.labels)]
    removed = [r for r in (answer_removed(g) for g in answerable) if r is not None]
    right: list[float] = []
    wrong: list[float] = []
    for group, logits in zip(answerable, group_logits(scorer, answerable), strict=True):
        (right if group.labels[int(np.argmax(logits))] else wrong).append(float(logits.max()))
    return {"right": right, "wrong": wrong, "hidden": [float(p.max()) for p in group_logits(scorer, removed)]}


def abstention_summary(scores: dict, probability: Callable[[np.ndarray], np.ndarray]) -> dict:
    """AUROCs of the top score and what a 0.5 threshold on the calibrated probability does."""
    right, wrong, hidden = (np.asarray(scores[k], dtype=np.float64) for k in ("right", "wrong", "hidden"))
    return {
        "auroc_right_vs_unanswerable": auroc(right.tolist(), hidden.tolist()),
        "auroc_right_vs_wrong_or_unanswerable": auroc(right.tolist(), wrong.tolist() + hidden.tolist()),
        "abstained_when_right": float((probability(right) < 0.5).mean()) if right.size else None,
        "abstained_when_unanswerable": float((probability(hidden) < 0.5).mean()) if hidden.size else None,
        "counts": {"right": int(right.size), "wrong": int(wrong.size), "unanswerable": int(hidden.size)},
    }


def fit_calibration(logits: np.ndarray, labels: np.ndarray) -> tuple[float, float]:
    """Platt scaling: a one-feature logistic regression of the labels on the logits."""
    from sklearn.linear_model import LogisticRegression

    fitted = LogisticRegression(C=1e4).fit(logits.reshape(-1, 1), labels)
    return float(fitted.coef_[0][0]), float(fitted.intercept_[0])


def expected_calibration_error(probabilities: np.ndarray, labels: np.ndarray, bins: int = 10) -> float:
    """Weighted mean |accuracy - confidence| over equal-width probability bins (qa eval's measure)."""
    error = evaluate.expected_calibration_error(
        np.asarray(probabilities).tolist(), np.asarray(labels, dtype=bool).tolist(), bins
    )
    return 0.0 if error is None else error


def latency_ms(verifier: Any, pairs: list[tuple[str, str]], calls: int = 60) -> dict:
    """Median and 90th percentile of one score_pairs call, in milliseconds, after a warm-up."""
    for _ in range(5):
        verifier.score_pairs(pairs)
    times = []
    for _ in range(calls):
        began = time.perf_counter()
        verifier.score_pairs(pairs)
        times.append(1000 * (time.perf_counter() - began))
    times.sort()
    return {"p50": round(statistics.median(times), 2), "p90": round(times[int(0.9 * (len(times) - 1))], 2)}


def copy_model(source_dir: Path, out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    for name in ("verifier.onnx", "verifier.onnx.sha256", "calibration.json"):
        shutil.copyfile(source_dir / name, out / name)
