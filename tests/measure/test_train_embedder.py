"""The embedder's fine-tuning command, end to end on a few examples, with the real bundled weights.

A few steps on data the test writes (the verifier's test data): triples from
the allowed groups only, training, checkpoints a rerun resumes from, the
float16 model with its sha256, and the held-aside report. It proves the
command works; the fine-tuned model's quality is in BENCHMARKS.md.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
from test_train_verifier import ODD_MARKER, write_data

from qa.embed.encoder import Encoder
from qa.measure import train_embedder
from qa.measure.train_embedder import EmbedderSettings, batch_at, triples
from qa.measure.verifier_data import choose_split, load_groups


def test_triples_pair_each_question_with_an_answer_and_a_sentence_of_its_group_that_does_not_answer(
    tmp_path: Path,
) -> None:
    data = write_data(tmp_path / "data")
    train, held = load_groups(data, choose_split(data, 0, squad_articles=1))
    made = triples(train, 0)
    assert made and len(made) <= len(train)
    by_question = {g.question: g for g in train}
    for question, answer, other in made:
        group = by_question[question]
        labels = dict(zip(group.sentences, group.labels, strict=True))
        assert labels[answer] == 1 and labels[other] == 0
    assert not any(ODD_MARKER in text for triple in made for text in triple)
    assert not {q for q, _, _ in made} & {g.question for g in held}  # held-aside questions are never trained on


def test_batches_are_a_function_of_the_seed_and_the_step() -> None:
    pool = [(f"q{i}", f"a{i}", f"o{i}") for i in range(10)]
    settings = EmbedderSettings(batch_size=4)
    epoch = [batch_at(pool, step, settings) for step in range(2)]
    assert [batch_at(pool, step, settings) for step in range(2)] == epoch
    assert len({t for batch in epoch for t in batch}) == 8  # no triple twice within an epoch
    assert batch_at(pool, 0, EmbedderSettings(batch_size=4, seed=1)) != epoch[0]


def _run(data: Path, work: Path, out: Path, *extra: str) -> int:
    argv = ["--data-dir", str(data), "--work", str(work), "--out", str(out), "--limit-questions", "8"]
    return train_embedder.main([*argv, "--max-steps", "2", "--held-squad-articles", "1", *extra])


def test_training_command_end_to_end_and_a_stopped_run_resumes_to_the_same_weights(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    data = write_data(tmp_path / "data")
    whole = tmp_path / "whole"
    assert _run(data, tmp_path / "work", whole, "--checkpoint-minutes", "0") == 0
    weights = (whole / "model.safetensors").read_bytes()
    recorded = (whole / "model.safetensors.sha256").read_text().split()[0]
    assert recorded == hashlib.sha256(weights).hexdigest()
    report = json.loads((whole / "report.json").read_text())
    assert report["steps"] == 2 and report["settings"]["max_steps"] == 2
    assert set(report["held-aside"]["models"]) == {"bundled all-MiniLM-L6-v2", str(whole), "shipped verifier (logits)"}
    # Saved in float16, used as float32: unit-length vectors of the model's size.
    vectors = Encoder(str(whole)).encode(["When was Alphaville founded?", "It was founded in 1800 by farmers."])
    assert vectors.dtype == np.float32 and np.allclose(np.linalg.norm(vectors, axis=1), 1, atol=1e-5)

    # Killed after its first step: the rerun resumes from that checkpoint and ends where an unbroken run does.
    original = train_embedder.batch_at

    def killed_at_step_one(pool: list, step: int, settings: EmbedderSettings) -> list:
        if step == 1:
            raise KeyboardInterrupt
        return original(pool, step, settings)

    work, out = tmp_path / "work2", tmp_path / "out2"
    monkeypatch.setattr(train_embedder, "batch_at", killed_at_step_one)
    with pytest.raises(KeyboardInterrupt):
        _run(data, work, out, "--checkpoint-minutes", "0", "--no-report")
    assert json.loads((work / "checkpoint" / "state.json").read_text())["step"] == 1 and not out.exists()
    monkeypatch.setattr(train_embedder, "batch_at", original)
    caplog.set_level("INFO")
    assert _run(data, work, out, "--no-report") == 0  # checkpoints every 5 minutes now: not a setting of the run
    assert "resumed at step 1 of 2" in caplog.text  # not started over
    assert (out / "model.safetensors").read_bytes() == weights


def test_a_checkpoint_of_other_settings_is_not_resumed(tmp_path: Path) -> None:
    data = write_data(tmp_path / "data")
    work = tmp_path / "work"
    assert _run(data, work, tmp_path / "out", "--no-report") == 0
    with pytest.raises(SystemExit, match="other settings"):
        train_embedder.main(
            [
                "--data-dir",
                str(data),
                "--work",
                str(work),
                "--out",
                str(tmp_path / "out"),
                "--max-steps",
                "3",
                "--limit-questions",
                "8",
                "--held-squad-articles",
                "1",
                "--no-report",
            ]
        )


def test_a_data_folder_lacking_a_file_is_named_before_anything_is_written(tmp_path: Path, capsys) -> None:
    data = write_data(tmp_path / "data")
    (data / "squad-v1.1-train-first11.json").unlink()
    work, out = tmp_path / "work", tmp_path / "out"
    assert _run(data, work, out) == 2
    assert "lacks squad-v1.1-train-first11.json" in capsys.readouterr().err
    assert not work.exists() and not out.exists()
