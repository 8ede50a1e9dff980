"""Questions embedded by onnxruntime: the model's own transformer, exported once from local weights.

For one short text, onnxruntime on one thread is about three times faster
than torch on the same weights, and its vectors agree with torch's to a
cosine of 0.9999998 (`python -m qa.measure.backends`, BENCHMARKS.md). Documents are
still embedded by torch: in batches the two run at the same speed.

The export is written once per model weights into a cache folder, with the
model's own fast tokenizer beside it, and checked against torch on a probe
text; anything unexpected (no onnxruntime, a model that is not mean-pooled
or has no fast tokenizer, a failed export, a cache that cannot be written,
vectors that disagree) falls back to torch with a warning, never to a wrong
vector. A passed check is recorded beside the export with the checksums of
what it covered (the export, the tokenizer, the model's weights and
configuration files, the libraries' versions): a later process whose files
and libraries all match loads the checked export without loading torch at
all (load_checked), which saves a `qa ask` the ~10 s of importing
sentence-transformers and loading the model. Any mismatch means the full
check again.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import secrets
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np

from qa.checksums import sha256_file

logger = logging.getLogger(__name__)

_PROBE = "Who chairs the Senate Judiciary Committee, and when did the hearing take place?"
_MIN_AGREEMENT = 0.9999  # cosine between the ONNX and torch vectors of the probe
_OPSET = 17
# Libraries whose versions a recorded check holds: any of them changing means checking again.
_CHECKED_WITH = ("onnxruntime", "tokenizers", "torch", "transformers", "sentence-transformers")


def is_mean_pooled(model: Any) -> bool:
    """True for a model made of a transformer, mean pooling and (optionally) normalisation."""
    names = [type(module).__name__ for module in model]
    if names not in (["Transformer", "Pooling"], ["Transformer", "Pooling", "Normalize"]):
        return False
    return model[1].get_config_dict().get("pooling_mode") == "mean"


class OnnxQueryEncoder:
    """Embeds one text at a time with an ONNX export of a mean-pooled sentence-transformers model.

    `tokenizer` is a `tokenizers.Tokenizer`, the model's own fast tokenizer,
    so that embedding needs neither transformers nor torch.
    """

    def __init__(self, session: Any, tokenizer: Any, max_length: int) -> None:
        self.session = session
        self.tokenizer = tokenizer
        self.tokenizer.no_padding()
        self.tokenizer.enable_truncation(max_length)  # the special tokens count, as in transformers' max_length
        self.max_length = max_length
        self.inputs = [node.name for node in session.get_inputs()]

    def encode(self, text: str) -> tuple[np.ndarray, bool]:
        """The text's unit-length float32 vector, cut to the model's window as torch would, and whether it was cut."""
        encoding = self.tokenizer.encode(text)
        columns = {
            "input_ids": encoding.ids,
            "attention_mask": encoding.attention_mask,
            "token_type_ids": encoding.type_ids,
        }
        feed = {name: np.asarray([columns[name]], dtype=np.int64) for name in self.inputs}
        hidden = self.session.run(None, feed)[0]
        mask = feed["attention_mask"][..., None].astype(np.float32)
        pooled = (hidden * mask).sum(axis=1) / np.maximum(mask.sum(axis=1), 1e-9)
        vector = (pooled / np.maximum(np.linalg.norm(pooled, axis=1, keepdims=True), 1e-12))[0].astype(np.float32)
        return vector, bool(encoding.overflowing)


def export(model: Any, path: Path) -> None:
    """Write the model's transformer as ONNX to `path`, atomically (a temporary file, then a rename)."""
    import torch

    transformer = model[0].auto_model.eval()
    names = list(model.tokenizer.model_input_names)

    class _LastHiddenState(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.inner = transformer

        def forward(self, *tensors: torch.Tensor) -> torch.Tensor:
            return self.inner(**dict(zip(names, tensors, strict=True))).last_hidden_state

    sample = model.tokenizer([_PROBE], return_tensors="pt")
    axes = {name: {0: "batch", 1: "tokens"} for name in [*names, "last_hidden_state"]}
    export_atomically(_LastHiddenState(), tuple(sample[name] for name in names), names, "last_hidden_state", axes, path)


def export_atomically(
    module: Any,
    inputs: tuple[Any, ...],
    input_names: list[str],
    output_name: str,
    axes: dict[str, dict[int, str]],
    path: Path,
) -> None:
    """torch.onnx.export (the tracer, opset 17) to a temporary file beside `path`, then a rename: never half a file."""
    import torch

    path.parent.mkdir(parents=True, exist_ok=True)
    with _replacing(path) as temporary, warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")  # the tracer's notes on constants are expected
        torch.onnx.export(
            module,
            inputs,
            str(temporary),
            input_names=input_names,
            output_names=[output_name],
            dynamic_axes=axes,
            opset_version=_OPSET,
            dynamo=False,
        )


def export_path(cache_dir: Path, weights_sha256: str) -> Path:
    """Where the export of the model with these weights is kept."""
    return cache_dir / "onnx" / f"{weights_sha256[:16]}-opset{_OPSET}.onnx"


def _tokenizer_path(export: Path) -> Path:
    return export.with_name(export.stem + ".tokenizer.json")


def _check_path(export: Path) -> Path:
    return export.with_name(export.stem + ".checked.json")


def _configuration_sha256(model_path: Path) -> str:
    """One checksum over the model folder's small files (configuration, pooling, tokenizer, vocabulary)."""
    digest = hashlib.sha256()
    for path in sorted([*model_path.glob("*"), *model_path.glob("*/*")]):
        if path.is_file() and path.suffix in {".json", ".txt", ".model"}:
            digest.update(str(path.relative_to(model_path)).encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()


def _versions() -> dict[str, str]:
    versions = {}
    for name in _CHECKED_WITH:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = ""
    return versions


def _record(model_path: Path, export: Path, weights_sha256: str, max_length: int) -> dict[str, Any]:
    """What a check covers, as recorded beside the export once it passes."""
    return {
        "export_sha256": sha256_file(export),
        "tokenizer_sha256": sha256_file(_tokenizer_path(export)),
        "weights_sha256": weights_sha256,
        "configuration_sha256": _configuration_sha256(model_path),
        "versions": _versions(),
        "max_length": max_length,
    }


def _session(path: Path) -> Any:
    import onnxruntime

    options = onnxruntime.SessionOptions()
    # One question is a few dozen tokens: more threads wait on each other more than they help.
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    return onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def load_checked(model_path: Path, cache_dir: Path, weights_sha256: str) -> OnnxQueryEncoder | None:
    """The question encoder from an export that passed its check with these very files, without torch; else None."""
    export = export_path(cache_dir, weights_sha256)
    try:
        recorded = json.loads(_check_path(export).read_text(encoding="utf-8"))
        max_length = int(recorded["max_length"])
        if recorded != _record(model_path, export, weights_sha256, max_length):
            logger.info("the ONNX export's recorded check does not match its files or libraries: checking again")
            return None
        from tokenizers import Tokenizer

        return OnnxQueryEncoder(_session(export), Tokenizer.from_file(str(_tokenizer_path(export))), max_length)
    except Exception as error:  # noqa: BLE001 (no record yet, or a damaged one: the full check decides)
        logger.debug("no usable record of a checked ONNX export (%s): checking it against torch", error)
        return None


def load(model: Any, model_path: Path, cache_dir: Path, weights_sha256: str) -> OnnxQueryEncoder | None:
    """The ONNX question encoder for this model, exported on first use and checked against torch; None to stay on torch.

    A passed check is recorded beside the export, for load_checked.
    """
    if not is_mean_pooled(model):
        logger.info("questions are embedded by torch: the model is not a mean-pooled transformer")
        return None
    path = export_path(cache_dir, weights_sha256)
    try:
        from tokenizers import Tokenizer

        backend = getattr(model.tokenizer, "backend_tokenizer", None)
        if backend is None:
            raise ValueError("the model has no fast tokenizer")
        if not path.is_file():
            logger.info("exporting the model to ONNX for question embedding: %s", path)
            export(model, path)
        max_length = int(model.max_seq_length)
        encoder = OnnxQueryEncoder(_session(path), Tokenizer.from_str(backend.to_str()), max_length)
        reference = model.encode([_PROBE], normalize_embeddings=True, show_progress_bar=False)[0]
        agreement = float(np.dot(encoder.encode(_PROBE)[0], reference))
    except Exception as error:  # noqa: BLE001 (ImportError, OSError and the exporter's and runtime's many types)
        logger.warning("questions are embedded by torch; the ONNX export is unavailable: %s", error)
        return None
    if agreement < _MIN_AGREEMENT:
        logger.warning(
            "questions are embedded by torch: the ONNX export at %s disagrees (cosine %.6f)", path, agreement
        )
        return None
    try:
        with _replacing(_tokenizer_path(path)) as temporary:
            temporary.write_text(encoder.tokenizer.to_str(), encoding="utf-8")
        record = _record(model_path, path, weights_sha256, max_length)
        with _replacing(_check_path(path)) as temporary:
            temporary.write_text(json.dumps(record, indent=1, sort_keys=True), encoding="utf-8")
    except OSError as error:  # the check passed: questions still take the export, only the next process checks again
        logger.warning("the ONNX export's check could not be recorded, so it runs again next time: %s", error)
    return encoder


@contextmanager
def _replacing(path: Path) -> Iterator[Path]:
    """A temporary file beside `path` to write, renamed over `path` if the block completes: never half a file."""
    temporary = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    try:
        yield temporary
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)
