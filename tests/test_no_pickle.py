"""Nothing is ever unpickled: no pickle-capable loader in the code, none in an index, safetensors weights.

Unpickling runs code chosen by whoever wrote the file; an index folder or a
model folder must never be able to do that.
"""

from __future__ import annotations

import ast
import json
import pickle
from pathlib import Path

import faiss
import numpy as np
import pytest
from conftest import REPO

from qa.embed.encoder import Encoder, bundled_model_path

SOURCES = [*sorted((REPO / "qa").rglob("*.py")), REPO / "app.py"]
PICKLING_MODULES = {"pickle", "cPickle", "_pickle", "cloudpickle", "dill", "joblib", "shelve"}
PICKLE_CALLS = {"read_pickle", "to_pickle"}  # pandas
WEIGHT_SUFFIXES = (".bin", ".pt", ".pth", ".pkl", ".pickle", ".ckpt", ".joblib")


def pickle_uses(tree: ast.AST) -> list[str]:
    """Imports of pickling modules, torch.load, np.load(allow_pickle=True) and pandas' pickle calls."""
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [alias.name for alias in node.names if alias.name.split(".")[0] in PICKLING_MODULES]
        elif isinstance(node, ast.ImportFrom) and node.module:
            root = node.module.split(".")[0]
            if root in PICKLING_MODULES or (root == "torch" and any(a.name == "load" for a in node.names)):
                found.append(f"from {node.module} import ...")
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
            owner = node.func.value.id if isinstance(node.func.value, ast.Name) else ""
            pickles = any(
                keyword.arg == "allow_pickle" and not (isinstance(keyword.value, ast.Constant) and keyword.value.value is False)
                for keyword in node.keywords
            )
            if (owner, node.func.attr) == ("torch", "load") or node.func.attr in PICKLE_CALLS or pickles:
                found.append(f"{owner}.{node.func.attr}(...) on line {node.lineno}")
    return found


@pytest.mark.parametrize("path", SOURCES, ids=lambda path: path.relative_to(REPO).as_posix())
def test_code_never_unpickles(path: Path) -> None:
    assert pickle_uses(ast.parse(path.read_text(encoding="utf-8"))) == []


def test_the_scan_finds_each_kind_of_pickle_use() -> None:
    code = """
import pickle
import joblib as jl
from dill import loads
from torch import load
torch.load("weights.pt")
np.load("vectors.npy", allow_pickle=True)
np.load("vectors.npy", allow_pickle=flag)
pd.read_pickle("frame.pkl")
np.load("vectors.npy")
np.load("vectors.npy", allow_pickle=False)
"""
    assert len(pickle_uses(ast.parse(code))) == 8


def test_index_files_are_json_jsonl_npy_and_faiss_only(small_pristine: tuple[Path, Path]) -> None:
    _, index_dir = small_pristine
    files = [path for path in index_dir.rglob("*") if path.is_file()]
    names = {path.name for path in files}
    assert names >= {"CURRENT", "manifest.json", "sentences.faiss", "sentences.npy", "data.csc.index.npy", "texts.jsonl"}
    for path in files:
        data = path.read_bytes()
        assert not data.startswith(b"\x80"), f"{path} looks like a pickle"  # protocol 2+ starts so
        if path.name in ("CURRENT", ".lock"):
            data.decode("ascii")
        elif path.suffix == ".json":
            json.loads(data)
        elif path.suffix == ".jsonl":
            assert all(isinstance(json.loads(line), dict) for line in data.decode("utf-8").splitlines())
        elif path.suffix == ".faiss":
            assert faiss.read_index(str(path)).d == 384
        elif path.suffix == ".npy":
            np.load(path, allow_pickle=False)  # raises on an object array, which would need pickle
        else:
            pytest.fail(f"unexpected file in the index: {path}")


def test_bundled_model_holds_safetensors_weights_only() -> None:
    names = [path.name for path in bundled_model_path().rglob("*") if path.is_file()]
    assert "model.safetensors" in names
    assert not [name for name in names if name.endswith(WEIGHT_SUFFIXES)]


def test_model_loads_without_unpickling(encoder: Encoder, monkeypatch: pytest.MonkeyPatch) -> None:
    import torch

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("something tried to unpickle while the model loaded")

    for owner, name in ((torch, "load"), (pickle, "load"), (pickle, "loads"), (pickle, "Unpickler")):
        monkeypatch.setattr(owner, name, refuse)
    fresh = Encoder()  # not the shared encoder, whose model is loaded already
    texts = ["Who chairs the Senate Judiciary Committee?"]
    np.testing.assert_allclose(fresh.encode(texts), encoder.encode(texts), atol=1e-6)
