"""qa.measure.calibrate_selqa end to end on a tiny SQuAD and a tiny SelQA, with the real model and verifier."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from conftest import write_tiny_squad

from qa.measure import calibrate_selqa

SECTION = {"article": "Owls", "section": "Diet", "candidates": ["Owls hunt mice at night.", "Barn owls nest in barns."]}
OTHER = {"article": "Owls", "section": "Range", "candidates": ["Owls live on every continent but Antarctica."]}


def test_it_fits_both_confidences_and_scores_them_on_held_questions(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    squad = write_tiny_squad(tmp_path / "squad.json")
    fit = [{**SECTION, "question": "What do owls hunt at night?", "answers": [0], "is_paraphrase": False}]
    held = [
        {**SECTION, "question": "Where do barn owls make their nests?", "answers": [1], "is_paraphrase": True},
        {**OTHER, "question": "Which continent has no owls?", "answers": [0], "is_paraphrase": False},
    ]
    (tmp_path / "selqa-ass-dev.json").write_text(json.dumps(fit), encoding="utf-8")
    (tmp_path / "selqa-ass-test.json").write_text(json.dumps(held), encoding="utf-8")
    argv = [str(squad), "--selqa", str(tmp_path / "selqa-ass-dev.json"), "--held", str(tmp_path / "selqa-ass-test.json")]
    assert calibrate_selqa.main([*argv, "--work", str(tmp_path / "work"), "--limit", "1", "--verifier"]) == 0
    out = capsys.readouterr().out
    assert re.search(r"^SQuAD \+ SelQA: ConfidenceModel\(intercept=", out, re.MULTILINE)
    for rows in ("SelQA held ", "SelQA held, reworded only", "SQuAD odd (record only)"):
        assert rows in out
    for line in out.splitlines():
        if "AUROC" in line:
            assert 0.0 <= float(re.search(r"AUROC (\d\.\d+)", line).group(1)) <= 1.0  # type: ignore[union-attr]
    # The tiny articles are none of those the verifier was held aside on: nothing to score, said so.
    assert "SelQA test, verifier unseen  no positive and negative pairs to score (n=0)" in out
