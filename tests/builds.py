"""Small seed folders and helpers shared by the index tests (tests/test_indexing.py, tests/system/test_faults.py)."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from qa.embed.encoder import Encoder
from qa.reader.index import load_index
from qa.storage.layout import MANIFEST, POINTER, live_build, pointer_text

DOCS = {
    "alpha.txt": "Alpha river floods each spring. Farmers plant rice on its banks.\nThe alpha bridge opened in 1902.\n",
    "beta.txt": "Beta mountain is covered in snow. Climbers reach the summit in July.\n",
    "notes/gamma.md": "# Gamma\n\nGamma city has a busy harbour.\n",
}
# DOCS and a sentence long enough to have word windows, so that no data file is empty.
FAULT_DOCS = {
    **DOCS,
    "delta.txt": "Delta farmers who grow wheat on the wide plains east of the river sell their grain at the autumn fair.\n",
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

    def encode_with_spans(
        self, texts: list[str], spans: list[list[tuple[int, int]]], progress: Any = None
    ) -> tuple[np.ndarray, np.ndarray]:
        self.encoded.extend(texts)
        return self.inner.encode_with_spans(texts, spans, progress)


def write_docs(seeds_dir: Path, docs: dict[str, str]) -> Path:
    for name, text in docs.items():
        path = seeds_dir / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    return seeds_dir


def live_pointer(index_dir: Path) -> str:
    """The text of CURRENT: the live build's name and its manifest's sha256."""
    return (index_dir / POINTER).read_text(encoding="utf-8")


def live_build_dir(index_dir: Path) -> Path:
    return live_build(index_dir)


def edit_manifest(index_dir: Path, change: Callable[[dict[str, Any]], Any]) -> None:
    """Change the live manifest as a build with other settings would have written it (CURRENT updated too)."""
    build = live_build(index_dir)
    manifest = json.loads((build / MANIFEST).read_text(encoding="utf-8"))
    change(manifest)
    data = json.dumps(manifest).encode("utf-8")
    (build / MANIFEST).write_bytes(data)
    (index_dir / POINTER).write_text(pointer_text(build.name, data), encoding="utf-8")


def live_state(index_dir: Path, encoder: Encoder) -> tuple[str, dict[str, Any]]:
    """The CURRENT pointer and the loaded manifest: what a failed build must leave as it was."""
    return live_pointer(index_dir), load_index(index_dir, encoder).manifest


def build_holds_the_lock(index_dir: Path, pid: int) -> bool:
    """Whether process `pid` holds the flock on index_dir/.lock, read from /proc/locks (Linux).

    Looking, rather than trying to take the lock, never makes that process's
    own attempt fail.
    """
    try:
        inode = (index_dir / ".lock").stat().st_ino
    except FileNotFoundError:
        return False
    for line in Path("/proc/locks").read_text().splitlines():
        fields = line.split()
        if "FLOCK" in fields and str(pid) in fields and any(f.endswith(f":{inode}") for f in fields):
            return True
    return False
