"""After training: export the chosen checkpoint, quantize it, measure both, ship one, write the card."""

from __future__ import annotations

import json
import logging
import shlex
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np

from qa.measure import verifier_eval as measure
from qa.measure import verifier_model
from qa.measure.verifier_data import Group, answer_removed

logger = logging.getLogger(__name__)

# int8 ships only if it loses at most this much of fp32's held-aside figures.
INT8_TOLERANCE = 0.01
MAX_SHIPPED_MB = 30.0


def _export_variants(settings: Any, outcome: Any, work: Path) -> dict[str, Path]:
    model = verifier_model.CrossEncoder(settings.layers)
    best = work / "best.safetensors"
    source = best if best.is_file() else work / "checkpoint" / "model.safetensors"
    model.load_state_dict(verifier_model.load_state(source))
    tok = verifier_model.tokenizer()
    folders = {"fp32": work / "fp32", "int8": work / "int8"}
    for folder in folders.values():
        folder.mkdir(parents=True, exist_ok=True)
    verifier_model.export_onnx(model, tok, folders["fp32"] / "verifier.onnx")
    verifier_model.quantize_int8(folders["fp32"] / "verifier.onnx", folders["int8"] / "verifier.onnx")
    return folders


def _calibration_pairs(
    scorer: Any, held: list[Group], held_squad: list[Group], mined: dict
) -> tuple[np.ndarray, np.ndarray]:
    """Held-aside pairs as question time sees them: paragraph groups, answer-removed groups, the fusion's top 20."""
    groups = [g for g in held if any(g.labels)]
    groups += [r for r in (answer_removed(g) for g in groups if g.dataset == "selqa") if r is not None]
    for group in held_squad:
        entry = mined.get(group.id)
        for key in ("top", "hidden"):
            if entry and entry.get(key):
                candidates = entry[key]
                groups.append(
                    Group(
                        "", group.question, [c["text"] for c in candidates], [int(c["hit"]) for c in candidates], "", ""
                    )
                )
    logits = np.concatenate(measure.group_logits(scorer, groups))
    labels = np.asarray([label for g in groups for label in g.labels])
    return logits, labels


def measure_variant(folder: Path, settings: Any, held: Any, held_squad: Any, mined: Any, latency_calls: int) -> dict:
    """Every held-aside figure of one exported model; writes its calibration.json and checksum."""
    from qa.verify.scorer import Calibration, Verifier, write_checksum

    write_checksum(folder / "verifier.onnx")
    (folder / "calibration.json").write_text(
        json.dumps({"slope": 1.0, "intercept": 0.0, "max_length": settings.max_length, "context": settings.context}),
        encoding="utf-8",
    )
    verifier = Verifier(folder, threads=2)
    scorer = measure.cached(verifier.logits)
    logits, labels = _calibration_pairs(scorer, held, held_squad, mined)
    slope, intercept = measure.fit_calibration(logits, labels)
    calibration = Calibration(slope, intercept, settings.max_length, settings.context)
    (folder / "calibration.json").write_text(
        json.dumps(
            {
                "slope": slope,
                "intercept": intercept,
                "max_length": settings.max_length,
                "context": settings.context,
                "fitted_on": "held-aside pairs (see MODEL_CARD.md)",
            },
            indent=2,
        )
        + "\n",
        encoding="utf-8",
    )
    answerable = [g for g in held if any(g.labels)]
    rerank = measure.rerank_figures(scorer, held_squad, mined)
    figures = {
        "selection_squad": measure.selection_accuracy([g for g in answerable if g.dataset != "selqa"], scorer),
        "selection_selqa": measure.selection_accuracy([g for g in answerable if g.dataset == "selqa"], scorer),
        "rerank": {k: v for k, v in rerank.items() if k != "scores"},
        "abstention_squad": measure.abstention_summary(rerank["scores"], calibration.probability),
        "abstention_selqa": measure.abstention_summary(measure.selqa_abstention(scorer, held), calibration.probability),
        "calibration": {
            "slope": slope,
            "intercept": intercept,
            "pairs": int(labels.size),
            "ece_10_bins": measure.expected_calibration_error(calibration.probability(logits), labels),
        },
        "size_mb": round((folder / "verifier.onnx").stat().st_size / 2**20, 2),
    }
    figures["latency_ms"] = _latency(folder, held_squad, mined, latency_calls)
    return figures


def _latency(folder: Path, held_squad: list[Group], mined: dict, calls: int) -> dict:
    from qa.verify.scorer import Verifier

    verifier = Verifier(folder, threads=1)
    entry = next((mined[g.id] for g in held_squad if g.id in mined and len(mined[g.id].get("hidden", [])) >= 10), None)
    if entry is None:
        return {}
    texts = [c["text"] for c in entry["top"]] + [c["text"] for c in entry["hidden"]]
    return {
        f"{n}_pairs": measure.latency_ms(verifier, [(entry["question"], t) for t in texts[:n]], calls) for n in (20, 30)
    }


def _int8_holds(fp32: dict, int8: dict) -> bool:
    pairs = [
        (fp32["selection_squad"], int8["selection_squad"]),
        (fp32["selection_selqa"], int8["selection_selqa"]),
        (fp32["rerank"]["reranked"]["mrr@10"], int8["rerank"]["reranked"]["mrr@10"]),
        (
            fp32["abstention_squad"]["auroc_right_vs_unanswerable"] or 0,
            int8["abstention_squad"]["auroc_right_vs_unanswerable"] or 0,
        ),
    ]
    return all(quantized >= full - INT8_TOLERANCE for full, quantized in pairs)


def final_report(
    args: Any, settings: Any, split: Any, outcome: Any, held: Any, held_squad: Any, mined: Any, pool_size: int
) -> dict:
    """Export, quantize, measure both on held-aside data, ship the better-sized one that holds quality."""
    folders = _export_variants(settings, outcome, args.work)
    variants = {
        name: measure_variant(folder, settings, held, held_squad, mined, args.latency_calls)
        for name, folder in folders.items()
    }
    holds = _int8_holds(variants["fp32"], variants["int8"])
    # fp32 over the size cap cannot ship at all, so int8 ships then too, flagged in the report and card.
    shipped = "int8" if holds or variants["fp32"]["size_mb"] > MAX_SHIPPED_MB else "fp32"
    measure.copy_model(folders[shipped], args.out)
    report = {
        "command": "python -m qa.measure.train_verifier " + " ".join(shlex.quote(a) for a in args.argv),
        "settings": asdict(settings),
        "split": split.to_dict(),
        "training": {
            "steps": outcome.steps,
            "pairs": outcome.pairs,
            "train_minutes": round(outcome.train_seconds / 60, 1),
            "pairs_per_second": round(outcome.pairs_per_second, 1),
            "best_step": outcome.best_step,
            "best_held_selection": outcome.best_selection,
            "stopped_early": outcome.stopped_early,
            "history": outcome.history,
            "training_groups": pool_size,
            "mined_questions": len(mined),
        },
        "held_aside": {"groups": len(held), "squad_report_questions": len(held_squad)},
        "variants": variants,
        "shipped": shipped,
        "int8_within_tolerance": holds,
    }
    return report


def write_card(out: Path, report: dict) -> None:
    """MODEL_CARD.md from the report: data and licences, command, seed, time, figures."""
    from qa.measure.verifier_card import card_text

    (out / "MODEL_CARD.md").write_text(card_text(report), encoding="utf-8")
