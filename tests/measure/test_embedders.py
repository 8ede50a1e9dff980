"""`python -m qa.measure.embedders`: embedding models' cosine against the verifier, on held-aside groups.

End to end on the calibration test's written data with the bundled model (given
twice: once by default, once by its folder) and the shipped verifier. The
figures on real data are BENCHMARKS.md's.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from qa.embed.encoder import bundled_model_path
from qa.measure import embedders
from qa.measure.verifier_data import Group
from tests.measure.test_calibrate_verifier import squad_article, write_data


def write_training_data(folder: Path) -> Path:
    """The calibration test's data, with the SQuAD train file the verifier's groups read too."""
    write_data(folder)
    train = {"version": "1.1", "data": [squad_article(title, 1700) for title in ["Kelso", "Lydd"]]}
    (folder / "squad-v1.1-train-first11.json").write_text(json.dumps(train), encoding="utf-8")
    return folder


def test_compares_models_and_the_verifier_on_the_held_aside_groups(tmp_path: Path) -> None:
    data = write_training_data(tmp_path / "data")
    out = tmp_path / "figures.json"
    argv = ["--data-dir", str(data), "--held-squad-articles", "1", "--model", str(bundled_model_path())]
    assert embedders.main([*argv, "--json", str(out)]) == 0
    results = json.loads(out.read_text(encoding="utf-8"))
    sets = embedders.held_groups(data, 0, 1)
    assert results["sets"] == {name: len(groups) for name, groups in sets.items()}
    assert all(count > 0 for count in results["sets"].values())
    default, by_folder, verifier = (results["models"][name] for name in results["models"])
    assert list(results["models"])[2] == embedders.VERIFIER
    for name in results["sets"]:
        # The same model, loaded two ways, ranks the same; every figure is a share.
        assert default[name] == by_folder[name]
        for figures in (default[name], verifier[name]):
            assert figures["groups"] == results["sets"][name]
            assert 0.0 <= figures["hit@1"] <= figures["mrr"] <= 1.0
    assert default["sentences per second"] > 0 and default["one question, ms"] > 0
    assert "sentences per second" not in verifier


def test_selection_ranks_each_group_by_its_scores() -> None:
    groups = [
        Group("a", "q1", ["x", "y", "z"], [0, 1, 0], "art", "squad-dev"),
        Group("b", "q2", ["u", "v"], [1, 0], "art", "squad-dev"),
    ]
    scores = {"x": 0.9, "y": 0.5, "z": 0.1, "u": 0.8, "v": 0.2}

    def scorer(questions: list[str], sentences: list[str]) -> np.ndarray:
        return np.asarray([scores[s] for s in sentences])

    # Group a's answer is second (reciprocal rank 1/2), group b's first.
    assert embedders.selection(groups, scorer) == {"groups": 2, "hit@1": 0.5, "mrr": pytest.approx(0.75)}


def test_a_folder_without_a_model_is_refused_with_a_message(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = write_data(tmp_path / "data")
    argv = ["--data-dir", str(data), "--held-squad-articles", "1", "--model", str(tmp_path / "nowhere")]
    assert embedders.main(argv) == 2
    assert "no local sentence-transformers model" in capsys.readouterr().err


def test_a_verifier_folder_without_a_model_is_refused_with_a_message(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = write_data(tmp_path / "data")
    argv = ["--data-dir", str(data), "--held-squad-articles", "1", "--model-dir", str(tmp_path / "nowhere")]
    assert embedders.main(argv) == 2
    assert str(tmp_path / "nowhere") in capsys.readouterr().err


def test_its_options_are_the_held_aside_tools_own_without_an_index_cache() -> None:
    options = {option for action in embedders.parser()._actions for option in action.option_strings}
    assert {"--data-dir", "--seed", "--held-squad-articles", "--model-dir", "--json", "--model"} <= options
    assert "--work" not in options
