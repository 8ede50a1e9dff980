"""The verifier's training settings, its pool of groups, each step's batch, the loss and the learning-rate schedule.

Apart from the command (qa/measure/train_verifier.py) and the loop
(qa/measure/verifier_loop.py), which both use them.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any, Protocol

from qa.measure.verifier_data import Group, answer_removed


@dataclass(frozen=True)
class TrainSettings:
    """Everything that decides the trained weights (recorded in the model card)."""

    seed: int = 0
    layers: int = 2
    max_steps: int = 3000
    groups_per_batch: int = 4
    pairs_per_group: int = 6
    mined_per_group: int = 2  # of the group's negatives, at most this many come from the fusion's top 20
    # High for BERT fine-tuning because the run is short (under 1,000 steps on 2 cores):
    # at 5e-5, held-aside selection was 0.575 after 250 steps (.cache/verifier/train-lr5e-5.log).
    learning_rate: float = 1.5e-4
    head_learning_rate: float = 2e-3  # the head starts from nothing; the encoder is already trained
    warmup_share: float = 0.06
    weight_decay: float = 0.01
    max_length: int = 80  # question plus sentence: most SQuAD and SelQA pairs fit, and cost grows with it
    context: str = "none"  # what the sentence side holds beside the sentence (qa.verify.scorer.reading)
    names: bool = False  # an opening He/She read with its name, as question time reads it (qa.verify.antecedent)
    answer_removed_share: float = 0.5  # of SelQA training questions, also asked with their answers removed
    reworded_repeats: int = 1  # each reworded SelQA group (and its answer-removed one) is in the pool this many times
    eval_every: int = 250
    checkpoint_minutes: float = 4.0


def _group_ids(groups: list[Group]) -> dict[str, Group]:
    return {group.id: group for group in groups}


def training_pool(groups: list[Group], mined: dict[str, dict], settings: TrainSettings) -> list[Group]:
    """Training groups with mined hard negatives attached, plus answer-removed SelQA groups.

    A reworded SelQA question and its answer-removed group go in `reworded_repeats` times, so that an epoch
    sees more questions worded away from their text than the data holds.
    """
    rng = random.Random(settings.seed)
    pool = []
    for group in groups:
        entry = mined.get(group.id)
        if entry is not None:
            known = set(group.sentences)
            hard = [c["text"] for c in entry["top"] if not c["hit"] and c["text"] not in known]
            hard = hard[: settings.mined_per_group]
            group = Group(
                **{**group.to_dict(), "sentences": group.sentences + hard, "labels": group.labels + [2] * len(hard)}
            )
        copies = settings.reworded_repeats if group.reworded else 1
        pool += [group] * copies
        if group.dataset == "selqa" and rng.random() < settings.answer_removed_share:
            removed = answer_removed(group)
            if removed is not None:
                pool += [removed] * copies
    return pool


def sample_group(group: Group, rng: random.Random, settings: TrainSettings) -> tuple[list[str], list[int]]:
    """At most `pairs_per_group` pairs: up to two positives, then mined (label 2) and other negatives."""
    positives = [s for s, label in zip(group.sentences, group.labels, strict=True) if label == 1]
    mined = [s for s, label in zip(group.sentences, group.labels, strict=True) if label == 2]
    others = [s for s, label in zip(group.sentences, group.labels, strict=True) if label == 0]
    rng.shuffle(positives)
    rng.shuffle(others)
    chosen = positives[:2]
    negatives = mined + others
    chosen_negatives = negatives[: settings.pairs_per_group - len(chosen)]
    return chosen + chosen_negatives, [1] * len(chosen) + [0] * len(chosen_negatives)


def batch_at(pool: list[Group], step: int, settings: TrainSettings) -> list[tuple[str, list[str], list[int]]]:
    """The batch of one step: a function of the seed and the step only, so that resuming is exact."""
    per_epoch = len(pool) // settings.groups_per_batch
    epoch, position = divmod(step, per_epoch)
    order = list(range(len(pool)))
    random.Random(f"{settings.seed}-epoch-{epoch}").shuffle(order)
    rng = random.Random(f"{settings.seed}-step-{step}")
    batch = []
    for number in order[position * settings.groups_per_batch : (position + 1) * settings.groups_per_batch]:
        sentences, labels = sample_group(pool[number], rng, settings)
        batch.append((pool[number].question, sentences, labels))
    return batch


def loss_of(model: Any, tok: Any, batch: Any, settings: TrainSettings) -> Any:
    """BCE over every pair (calibrates, and teaches "nothing answers") plus a listwise softmax (ranks)."""
    import torch

    from qa.measure.verifier_model import encode_pairs

    questions = [q for q, sentences, _ in batch for _ in sentences]
    sentences = [s for _, group, _ in batch for s in group]
    labels = torch.tensor([label for _, _, group in batch for label in group], dtype=torch.float32)
    logits = model(**encode_pairs(tok, questions, sentences, settings.max_length))
    bce = torch.nn.functional.binary_cross_entropy_with_logits(logits, labels)
    listwise, counted, first = logits.new_zeros(()), 0, 0
    for _, group, _group_labels in batch:
        part, target = logits[first : first + len(group)], labels[first : first + len(group)]
        first += len(group)
        if target.sum() > 0:
            listwise = listwise - (torch.log_softmax(part, dim=0) * target).sum() / target.sum()
            counted += 1
    return bce + listwise / max(counted, 1)


class Scheduled(Protocol):
    """What the learning-rate schedule reads of a run's settings (the verifier's and the embedder's)."""

    @property
    def warmup_share(self) -> float: ...

    @property
    def max_steps(self) -> int: ...


def schedule(step: int, settings: Scheduled) -> float:
    """Linear warmup, then linear decay to zero at max_steps."""
    warmup = max(1, round(settings.warmup_share * settings.max_steps))
    if step < warmup:
        return (step + 1) / warmup
    return max(0.0, (settings.max_steps - step) / max(1, settings.max_steps - warmup))
