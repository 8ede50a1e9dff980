"""Train the answer verifier, export it to ONNX, quantize it and report on held-aside data.

    python -m qa.measure.train_verifier --data-dir ../shared/data --work .cache/verifier \\
        --out qa/verify/model --seed 0 [--max-steps N] [--limit-questions N] [--layers 4] \\
        [--context previous --max-length 128] [--names] [--mine-questions N --mined-per-group N] [--reworded-repeats N]

Steps: training groups from the allowed data (qa/measure/verifier_data.py);
hard candidates mined with the current fusion over an index of the allowed
SQuAD articles (qa/measure/verifier_mining.py); training with binary
cross-entropy over every pair plus a listwise softmax over each group with an
answer; the checkpoint with the best held-aside sentence selection; ONNX
export, int8 quantization and the held-aside report (qa/measure/verifier_eval.py).

A checkpoint is written every few minutes under `--work`; the same command
resumes a stopped run from it. Batches depend only on the seed and the step,
so a resumed run sees the batches an uninterrupted one would have.
"""

from __future__ import annotations

import argparse
import json
import logging
import random
import sys
import time
from pathlib import Path

from qa.measure.verifier_batches import TrainSettings, training_pool
from qa.measure.verifier_data import SELQA, SQUAD_DEV, SQUAD_TRAIN, Group, choose_split, load_groups, mining_corpus
from qa.measure.verifier_mining import with_readings
from qa.verify.scorer import CONTEXTS

logger = logging.getLogger(__name__)


def parse_args(argv: list[str] | None, prog: str = "python -m qa.measure.train_verifier") -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog=prog, description=__doc__.split("\n")[0])
    parser.add_argument("--data-dir", type=Path, required=True, help="folder with the SQuAD and SelQA files")
    parser.add_argument("--work", type=Path, default=Path(".cache/verifier"), help="checkpoints, mining index, logs")
    parser.add_argument("--out", type=Path, default=Path("qa/verify/model"), help="where the shipped model goes")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--layers", type=int, default=TrainSettings.layers, help="MiniLM layers kept (of 6)")
    parser.add_argument(
        "--context",
        choices=CONTEXTS,
        default=TrainSettings.context,
        help="what the model reads beside each sentence: nothing, or the sentence before it in its document",
    )
    parser.add_argument(
        "--names",
        action=argparse.BooleanOptionalAction,
        default=TrainSettings.names,
        help="read a sentence opening with He/She/His/Her with the name it stands for, as question time does",
    )
    parser.add_argument("--max-length", type=int, default=TrainSettings.max_length, help="tokens per pair at most")
    parser.add_argument("--max-steps", type=int, default=TrainSettings.max_steps)
    parser.add_argument("--eval-every", type=int, default=TrainSettings.eval_every)
    parser.add_argument("--checkpoint-minutes", type=float, default=TrainSettings.checkpoint_minutes)
    parser.add_argument("--limit-questions", type=int, help="train on this many groups only (pilots, tests)")
    parser.add_argument("--mine-questions", type=int, default=2000, help="SQuAD training questions mined (0: none)")
    parser.add_argument(
        "--mined-per-group",
        type=int,
        default=TrainSettings.mined_per_group,
        help="of a mined question's negatives, at most this many are the fusion's best wrong candidates",
    )
    parser.add_argument(
        "--reworded-repeats",
        type=_at_least_one,
        default=TrainSettings.reworded_repeats,
        help="each reworded SelQA training question is in the pool this many times",
    )
    parser.add_argument("--held-questions", type=int, default=300, help="held-aside SQuAD questions in the report")
    parser.add_argument("--held-squad-articles", type=int, default=4, help="even dev articles held aside")
    parser.add_argument("--latency-calls", type=int, default=100, help="scorer calls timed per latency figure")
    parser.add_argument("--max-minutes", type=float, help="stop training after this much wall time (then export)")
    return parser.parse_args(argv)


def _at_least_one(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"takes a whole number, not {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"takes 1 or more (1: each question once), not {value}")
    return value


def main(argv: list[str] | None = None, prog: str = "python -m qa.measure.train_verifier") -> int:
    """Train, export and report; `prog` is the name the usage shows (`python -m qa train` runs this too)."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", datefmt="%H:%M:%S")
    args = parse_args(argv, prog)
    missing = [name for name in (SQUAD_DEV, SQUAD_TRAIN, *SELQA) if not (args.data_dir / name).is_file()]
    if missing:
        print(
            f'error: {args.data_dir} lacks {", ".join(missing)}; README.md, "The answer verifier", says where to get them',
            file=sys.stderr,
        )
        return 2
    args.argv = list(sys.argv[1:] if argv is None else argv)
    started = time.time()
    settings = TrainSettings(
        seed=args.seed,
        layers=args.layers,
        max_steps=args.max_steps,
        max_length=args.max_length,
        context=args.context,
        names=args.names,
        mined_per_group=args.mined_per_group,
        reworded_repeats=args.reworded_repeats,
        eval_every=args.eval_every,
        checkpoint_minutes=args.checkpoint_minutes,
    )
    args.work.mkdir(parents=True, exist_ok=True)
    split = choose_split(args.data_dir, args.seed, args.held_squad_articles)
    train, held = load_groups(args.data_dir, split, settings.context, settings.names)
    if args.limit_questions:
        train = random.Random(args.seed).sample(train, min(args.limit_questions, len(train)))
    logger.info("groups: %s training, %s held aside; held-aside split %s", len(train), len(held), split.to_dict())
    mined = with_readings(_mine(args, train, held), args.work, settings.context, settings.names)
    pool = training_pool(train, mined, settings)
    from qa.measure import verifier_eval, verifier_loop, verifier_report

    report_ids = held_report_ids(held, args.held_questions, args.seed)
    held_squad = [g for g in held if g.id in report_ids]
    checkpoint_groups = verifier_eval.checkpoint_groups(held, args.seed)
    outcome = verifier_loop.train(pool, checkpoint_groups, settings, args.work, args.max_minutes)
    report = verifier_report.final_report(args, settings, split, outcome, held, held_squad, mined, len(pool))
    report["wall_minutes_total"] = round((time.time() - started) / 60, 1)
    (args.out / "report.json").write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    verifier_report.write_card(args.out, report)
    logger.info("done in %.1f minutes; model in %s", (time.time() - started) / 60, args.out)
    return 0


def held_report_ids(held: list[Group], count: int, seed: int) -> set[str]:
    """A seeded sample of the held-aside SQuAD questions: those the report searches and reranks."""
    ids = sorted(g.id for g in held if g.dataset != "selqa")
    return set(random.Random(seed).sample(ids, min(count, len(ids))))


def _mine(args: argparse.Namespace, train: list[Group], held: list[Group]) -> dict[str, dict]:
    """Fusion candidates for a seeded sample of SQuAD training questions and the held-aside ones."""
    from qa.measure.verifier_mining import mine

    documents, questions = mining_corpus(args.data_dir)
    train_ids = sorted(g.id for g in train if g.dataset != "selqa")
    train_ids = random.Random(args.seed).sample(train_ids, min(args.mine_questions, len(train_ids)))
    held_ids = held_report_ids(held, args.held_questions, args.seed)
    wanted = set(train_ids) | set(held_ids)
    chosen = [q for q in questions if q.id in wanted]
    if not chosen:
        return {}
    return mine(documents, chosen, args.work, set(held_ids))


if __name__ == "__main__":
    raise SystemExit(main())
