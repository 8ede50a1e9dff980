"""Settings from QA_* variables."""

from __future__ import annotations

from pathlib import Path

import pytest

from qa.config import DEFAULT_MAX_FILE_MB, Settings
from qa.errors import SettingsError


def test_defaults_without_variables() -> None:
    settings = Settings.from_env({})
    assert settings == Settings()
    assert (settings.seeds_dir, settings.index_dir, settings.model) == (Path("seeds"), Path("index"), None)
    assert settings.min_confidence is None  # each confidence model's own threshold


def test_variables_override_defaults() -> None:
    settings = Settings.from_env(
        {"QA_SEEDS": "/data/seeds", "QA_INDEX": "/data/index", "QA_MODEL": "/models/mini", "QA_MIN_CONFIDENCE": "0.25"}
    )
    assert settings.seeds_dir == Path("/data/seeds") and settings.index_dir == Path("/data/index")
    assert settings.model == "/models/mini" and settings.min_confidence == 0.25


def test_empty_variables_are_ignored() -> None:
    assert Settings.from_env({"QA_SEEDS": "", "QA_MIN_CONFIDENCE": ""}) == Settings()


def test_reads_the_process_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("QA_INDEX", "elsewhere")
    assert Settings.from_env().index_dir == Path("elsewhere")


def test_max_file_mb_defaults_to_25_and_is_read_from_the_environment() -> None:
    assert Settings().max_file_mb == DEFAULT_MAX_FILE_MB == 25
    assert Settings.from_env({"QA_MAX_FILE_MB": "100"}).max_file_mb == 100
    assert Settings.from_env({"QA_MAX_FILE_MB": "0.5"}).max_file_mb == 0.5


@pytest.mark.parametrize("value", ["0", "-3", "lots", "nan", "inf", "25MB"])
def test_max_file_mb_must_be_a_positive_number(value: str) -> None:
    with pytest.raises(SettingsError, match=rf"QA_MAX_FILE_MB='{value}' is not a number of megabytes above 0"):
        Settings.from_env({"QA_MAX_FILE_MB": value})


def test_the_verifier_is_on_unless_switched_off() -> None:
    assert Settings.from_env({}).verifier is True
    assert Settings.from_env({"QA_VERIFIER": "on"}).verifier is True
    assert Settings.from_env({"QA_VERIFIER": "OFF"}).verifier is False
    assert Settings.from_env({"QA_VERIFIER": "1"}).verifier is True
    with pytest.raises(SettingsError, match="QA_VERIFIER='maybe' is not on or off"):
        Settings.from_env({"QA_VERIFIER": "maybe"})
