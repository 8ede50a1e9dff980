"""Fine-tune the embedding model on the allowed question-answer data, and report on held-aside data.

    python -m qa.measure.train_embedder --data-dir ../shared/data --work .cache/embedder \\
        --out .cache/embedder-out --seed 0 [--epochs 1] [--limit-questions N] [--max-steps N]

The bundled all-MiniLM-L6-v2 is trained so that a question's vector lies
nearer its answer sentence's than the other sentences': each training
question of the answer verifier's split (qa/measure/verifier_data.py: the
even SQuAD dev articles but the held-aside ones, the 11 SQuAD train articles
and SelQA's training articles; never the odd SQuAD articles or the seed dev
sets) gives one triple of the question, one of its answer sentences and one
sentence of the same paragraph or section that does not answer. The loss is
the cross-entropy of picking the question's own answer among every answer
and non-answer sentence of its batch, by scaled cosine (in-batch negatives,
as sentence-transformers' MultipleNegativesRankingLoss computes it).

A checkpoint is written every few minutes under `--work`, and the same
command resumes a stopped run from it; batches and dropout depend only on
the seed and the step. The model is saved to `--out` in float16 (half the
file; the encoder loads it as float32) with its weights' sha256, and
`report.json` there holds the held-aside figures of qa.measure.embedders for
the bundled model and this one.
"""

from __future__ import annotations

import argparse
import copy
import json
import logging
import random
import shutil
import sys
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

from qa.checksums import sha256_file
from qa.measure.verifier_data import SELQA, SQUAD_DEV, SQUAD_TRAIN, Group, choose_split, load_groups

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class EmbedderSettings:
    """What decides a run: a checkpoint written with other settings is not resumed."""

    seed: int = 0
    epochs: float = 1.0
    batch_size: int = 32
    learning_rate: float = 2e-5
    weight_decay: float = 0.01
    warmup_share: float = 0.1
    scale: float = 20.0  # cosines times this are the loss's logits (MultipleNegativesRankingLoss's default)
    max_length: int = 128
    max_steps: int = 0  # 0: epochs × triples / batch size
    limit_questions: int = 0


Triple = tuple[str, str, str]


def triples(groups: list[Group], seed: int) -> list[Triple]:
    """(question, an answer sentence, a same-group sentence that does not answer), one per usable group."""
    rng = random.Random(seed)
    made = []
    for group in groups:
        answers = [s for s, label in zip(group.sentences, group.labels, strict=True) if label]
        others = [s for s, label in zip(group.sentences, group.labels, strict=True) if not label]
        if group.answerable and answers and others:
            made.append((group.question, rng.choice(answers), rng.choice(others)))
    return made


def batch_at(pool: list[Triple], step: int, settings: EmbedderSettings) -> list[Triple]:
    """The triples of one step: the step's slice of its epoch's seeded order, so a resumed run sees the same."""
    per_epoch = max(1, len(pool) // settings.batch_size)
    epoch, position = divmod(step, per_epoch)
    order = list(range(len(pool)))
    random.Random(settings.seed * 1_000_003 + epoch).shuffle(order)
    start = position * settings.batch_size
    return [pool[i] for i in order[start : start + settings.batch_size]]


def total_steps(pool: list[Triple], settings: EmbedderSettings) -> int:
    return settings.max_steps or max(1, round(settings.epochs * len(pool) / settings.batch_size))


def train(
    pool: list[Triple], settings: EmbedderSettings, work: Path, base: Path, checkpoint_minutes: float = 5.0
) -> tuple[Any, dict]:
    """The fine-tuned SentenceTransformer and the run's state (steps, seconds, losses), resuming from work/checkpoint.

    A checkpoint is written every `checkpoint_minutes` and after the last step; how often does not
    change the run, so a rerun may resume with another.
    """
    import torch
    from sentence_transformers import SentenceTransformer

    from qa.measure.verifier_batches import schedule
    from qa.measure.verifier_loop import load_checkpoint, save_checkpoint, seed_everything

    torch.set_num_threads(2)
    seed_everything(settings.seed)
    model = SentenceTransformer(str(base), device="cpu", local_files_only=True, model_kwargs={"dtype": torch.float32})
    model.max_seq_length = settings.max_length
    optimizer = torch.optim.AdamW(model.parameters(), lr=settings.learning_rate, weight_decay=settings.weight_decay)
    steps = total_steps(pool, settings)
    folder = work / "checkpoint"
    state = load_checkpoint(folder, model, optimizer) or {
        "step": 0,
        "train_seconds": 0.0,
        "losses": [],
        "settings": asdict(settings),
    }
    if state["settings"] != asdict(settings):
        raise SystemExit(f"{folder} was written with other settings {state['settings']}; remove it or rerun with those")
    if state["step"]:
        logger.info("resumed at step %s of %s", state["step"], steps)
    schedule_settings = replace(settings, max_steps=steps)  # max_steps 0 means "from --epochs"

    def embed(texts: list[str]) -> torch.Tensor:
        features = model.preprocess(texts)
        return torch.nn.functional.normalize(model(features)["sentence_embedding"], dim=-1)

    last_save, session_start, before = time.time(), time.time(), state["train_seconds"]
    model.train()
    while state["step"] < steps:
        step = state["step"]
        torch.manual_seed(settings.seed * 1_000_003 + step)  # dropout masks: a function of the step
        for group in optimizer.param_groups:
            group["lr"] = settings.learning_rate * schedule(step, schedule_settings)
        batch = batch_at(pool, step, settings)
        questions = embed([question for question, _, _ in batch])
        sentences = embed([answer for _, answer, _ in batch] + [other for _, _, other in batch])
        logits = settings.scale * questions @ sentences.T
        loss = torch.nn.functional.cross_entropy(logits, torch.arange(len(batch)))
        optimizer.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        state["step"] = step + 1
        state["train_seconds"] = before + time.time() - session_start
        state["losses"].append(round(loss.item(), 4))
        if state["step"] % 20 == 0:
            recent = state["losses"][-20:]
            logger.info("step %s of %s, loss %.4f", state["step"], steps, sum(recent) / len(recent))
        if time.time() - last_save > 60 * checkpoint_minutes or state["step"] == steps:
            save_checkpoint(folder, model, optimizer, state)
            last_save = time.time()
    model.eval()
    return model, state


def save_model(model: Any, out: Path) -> str:
    """Write the model to `out` in float16, replacing what was there, with its weights' sha256 beside; returns it."""
    temporary = out.with_name(f".{out.name}.tmp")
    shutil.rmtree(temporary, ignore_errors=True)
    copy.deepcopy(model).half().save(str(temporary))
    digest = sha256_file(temporary / "model.safetensors")
    (temporary / "model.safetensors.sha256").write_text(f"{digest}  model.safetensors\n", encoding="utf-8")
    (temporary / "README.md").unlink(missing_ok=True)  # the library's generic card; the project writes its own
    if out.exists():
        shutil.rmtree(out)
    temporary.replace(out)
    return digest


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m qa.measure.train_embedder", description=__doc__.split("\n")[0])
    parser.add_argument("--data-dir", type=Path, required=True, help="folder with the SQuAD and SelQA files")
    parser.add_argument("--work", type=Path, default=Path(".cache/embedder"), help="checkpoints")
    parser.add_argument("--out", type=Path, default=Path(".cache/embedder-out"), help="where the model is saved")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--epochs", type=float, default=EmbedderSettings.epochs)
    parser.add_argument("--max-steps", type=int, default=0, help="stop after this many steps (default: --epochs)")
    parser.add_argument("--limit-questions", type=int, default=0, help="train on this many groups only (tests)")
    parser.add_argument("--checkpoint-minutes", type=float, default=5.0, help="how often a checkpoint is written")
    parser.add_argument("--held-squad-articles", type=int, default=4, help="even dev articles held aside")
    parser.add_argument("--no-report", action="store_true", help="skip the held-aside report (tests)")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", datefmt="%H:%M:%S")
    args = parse_args(argv)
    missing = [name for name in (SQUAD_DEV, SQUAD_TRAIN, *SELQA) if not (args.data_dir / name).is_file()]
    if missing:
        print(f"error: {args.data_dir} lacks {', '.join(missing)}; README.md says where to get them", file=sys.stderr)
        return 2
    from qa.embed.encoder import bundled_model_path

    started = time.time()
    settings = EmbedderSettings(
        seed=args.seed,
        epochs=args.epochs,
        max_steps=args.max_steps,
        limit_questions=args.limit_questions,
    )
    split = choose_split(args.data_dir, args.seed, args.held_squad_articles)
    train_groups, held = load_groups(args.data_dir, split)
    if args.limit_questions:
        train_groups = random.Random(args.seed).sample(train_groups, min(args.limit_questions, len(train_groups)))
    pool = triples(train_groups, args.seed)
    logger.info("%s training triples from %s groups; %s held aside", len(pool), len(train_groups), len(held))
    args.work.mkdir(parents=True, exist_ok=True)
    model, state = train(pool, settings, args.work, bundled_model_path(), args.checkpoint_minutes)
    digest = save_model(model, args.out)
    report: dict = {
        "command": "python -m qa.measure.train_embedder " + " ".join(sys.argv[1:] if argv is None else argv),
        "settings": asdict(settings),
        "split": split.to_dict(),
        "triples": len(pool),
        "steps": state["step"],
        "train_minutes": round(state["train_seconds"] / 60, 1),
        "model.safetensors sha256": digest,
    }
    if not args.no_report:
        from qa.measure.embedders import compare

        report["held-aside"] = compare(args.data_dir, [None, args.out], args.seed, args.held_squad_articles)
    report["wall_minutes_total"] = round((time.time() - started) / 60, 1)
    (args.out / "report.json").write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    logger.info("done in %.1f minutes; model in %s", report["wall_minutes_total"], args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
