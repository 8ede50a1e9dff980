"""Small seed folders and helpers shared by the index tests (tests/test_index.py, tests/test_faults.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from qa.embed import Encoder
from qa.index import load_index

DOCS = {
    "alpha.txt": "Alpha river floods each spring. Farmers plant rice on its banks.\nThe alpha bridge opened in 1902.\n",
    "beta.txt": "Beta mountain is covered in snow. Climbers reach the summit in July.\n",
    "notes/gamma.md": "# Gamma\n\nGamma city has a busy harbour.\n",
}


class RecordingEncoder:
    """The real encoder, remembering every text it was asked to embed."""

    def __init__(self, inner: Encoder) -> None:
        self.inner = inner
        self.encoded: list[str] = []

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def encode(self, texts: list[str], progress: Any = None) -> np.ndarray:
        self.encoded.extend(texts)
        return self.inner.encode(texts, progress)


def write_docs(seeds_dir: Path, docs: dict[str, str]) -> Path:
    for name, text in docs.items():
        path = seeds_dir / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    return seeds_dir


def live_pointer(index_dir: Path) -> str:
    return (index_dir / "CURRENT").read_text(encoding="utf-8")


def live_state(index_dir: Path, encoder: Encoder) -> tuple[str, dict[str, Any]]:
    """The CURRENT pointer and the loaded manifest: what a failed build must leave as it was."""
    return live_pointer(index_dir), load_index(index_dir, encoder).manifest
