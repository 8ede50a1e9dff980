"""The verifier's training loop: AdamW, warmup and decay, checkpoints that a rerun resumes from.

Checkpoint files under `work/checkpoint/`: `model.safetensors`,
`optimizer.safetensors` (AdamW's moments), `state.json` (step, elapsed time,
the best held-aside figure so far and the history). The best weights by
held-aside sentence selection are kept in `work/best.safetensors`.
"""

from __future__ import annotations

import json
import logging
import random
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from qa.measure import verifier_model
from qa.measure.verifier_data import Group

logger = logging.getLogger(__name__)


@dataclass
class Outcome:
    """What training did: steps, time, speed, the chosen checkpoint and the held-aside history."""

    steps: int
    train_seconds: float
    pairs: int
    best_step: int
    best_selection: float
    stopped_early: bool
    history: list[dict] = field(default_factory=list)

    @property
    def pairs_per_second(self) -> float:
        return self.pairs / max(self.train_seconds, 1e-9)


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def _optimizer(model: verifier_model.CrossEncoder, settings: Any) -> torch.optim.AdamW:
    head = list(model.head.parameters())
    head_ids = {id(p) for p in head}
    encoder = [p for p in model.parameters() if id(p) not in head_ids and p.requires_grad]
    return torch.optim.AdamW(
        [{"params": encoder, "lr": settings.learning_rate}, {"params": head, "lr": settings.head_learning_rate}],
        weight_decay=settings.weight_decay,
    )


def save_checkpoint(folder: Path, model: Any, optimizer: Any, state: dict) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    verifier_model.save_state(model.state_dict(), folder / "model.safetensors")
    moments = {}
    for number, values in optimizer.state_dict()["state"].items():
        for name, tensor in values.items():
            moments[f"{number}.{name}"] = torch.as_tensor(tensor)
    verifier_model.save_state(moments, folder / "optimizer.safetensors")
    temporary = folder / "state.json.tmp"
    temporary.write_text(json.dumps(state, indent=1), encoding="utf-8")
    temporary.replace(folder / "state.json")


def load_checkpoint(folder: Path, model: Any, optimizer: Any) -> dict | None:
    if not (folder / "state.json").is_file():
        return None
    model.load_state_dict(verifier_model.load_state(folder / "model.safetensors"))
    moments = verifier_model.load_state(folder / "optimizer.safetensors")
    saved = optimizer.state_dict()
    state: dict = {}
    for key, tensor in moments.items():
        number, name = key.split(".", 1)
        state.setdefault(int(number), {})[name] = tensor
    optimizer.load_state_dict({"state": state, "param_groups": saved["param_groups"]})
    return json.loads((folder / "state.json").read_text(encoding="utf-8"))


def train(
    pool: list[Group], checkpoint_groups: list[Group], settings: Any, work: Path, max_minutes: float | None
) -> Outcome:
    """Train to settings.max_steps (or max_minutes of wall time), resuming from work/checkpoint."""
    from qa.measure.verifier_batches import batch_at, loss_of, schedule
    from qa.measure.verifier_eval import selection_accuracy, torch_scorer

    torch.set_num_threads(2)
    seed_everything(settings.seed)
    model = verifier_model.CrossEncoder(settings.layers)
    tok = verifier_model.tokenizer()
    optimizer = _optimizer(model, settings)
    base_rates = [group["lr"] for group in optimizer.param_groups]
    folder = work / "checkpoint"
    state = load_checkpoint(folder, model, optimizer) or {
        "step": 0,
        "train_seconds": 0.0,
        "pairs": 0,
        "best_step": -1,
        "best_selection": -1.0,
        "history": [],
        "settings": asdict(settings),
    }
    if state["settings"] != asdict(settings):
        raise SystemExit(f"{folder} was written with other settings {state['settings']}; remove it or rerun with those")
    if state["step"]:
        logger.info("resumed at step %s", state["step"])
    last_save, session_start, stopped_early = time.time(), time.time(), False
    elapsed_before = state["train_seconds"]
    while state["step"] < settings.max_steps:
        step = state["step"]
        if max_minutes is not None and elapsed_before + time.time() - session_start > 60 * max_minutes:
            stopped_early = True
            break
        model.train()
        torch.manual_seed(settings.seed * 1_000_003 + step)  # dropout masks: a function of the step
        for group, rate in zip(optimizer.param_groups, base_rates, strict=True):
            group["lr"] = rate * schedule(step, settings)
        batch = batch_at(pool, step, settings)
        loss = loss_of(model, tok, batch, settings)
        optimizer.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        state["step"] = step + 1
        state["pairs"] += sum(len(sentences) for _, sentences, _ in batch)
        state["train_seconds"] = elapsed_before + time.time() - session_start
        if state["step"] % 25 == 0:
            logger.info(
                "step %s loss %.4f pairs/s %.1f", state["step"], loss.item(), state["pairs"] / state["train_seconds"]
            )
        if state["step"] % settings.eval_every == 0 or state["step"] == settings.max_steps:
            _evaluate(model, tok, checkpoint_groups, settings, work, state, selection_accuracy, torch_scorer)
        if time.time() - last_save > 60 * settings.checkpoint_minutes or state["step"] == settings.max_steps:
            save_checkpoint(folder, model, optimizer, state)
            last_save = time.time()
    if stopped_early:
        _evaluate(model, tok, checkpoint_groups, settings, work, state, selection_accuracy, torch_scorer)
        save_checkpoint(folder, model, optimizer, state)
        logger.info("stopped at step %s after %.1f minutes (--max-minutes)", state["step"], state["train_seconds"] / 60)
    return Outcome(
        state["step"],
        state["train_seconds"],
        state["pairs"],
        state["best_step"],
        state["best_selection"],
        stopped_early,
        state["history"],
    )


def _evaluate(
    model: Any, tok: Any, groups: Any, settings: Any, work: Any, state: Any, selection_accuracy: Any, torch_scorer: Any
) -> None:
    """Held-aside selection accuracy now; keep these weights if they are the best so far."""
    if any(entry["step"] == state["step"] for entry in state["history"]):
        return
    began = time.time()
    accuracy = selection_accuracy(groups, torch_scorer(model, tok, settings.max_length))
    state["history"].append({"step": state["step"], "held_selection": round(accuracy, 4)})
    logger.info("step %s held-aside selection %.4f (%.0f s)", state["step"], accuracy, time.time() - began)
    if accuracy > state["best_selection"]:
        state["best_selection"], state["best_step"] = accuracy, state["step"]
        verifier_model.save_state(model.state_dict(), work / "best.safetensors")
