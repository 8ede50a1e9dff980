"""Questions embedded by onnxruntime: the model's own transformer, exported once from local weights.

For one short text, onnxruntime on one thread is about three times faster
than torch on the same weights, and its vectors agree with torch's to a
cosine of 0.9999998 (`python -m qa.measure.backends`, BENCHMARKS.md). Documents are
still embedded by torch: in batches the two run at the same speed.

The export is written once per model weights into a cache folder and checked
against torch on a probe text whenever it is loaded; anything unexpected
(no onnxruntime, a model that is not mean-pooled, a failed export, a cache
that cannot be written, vectors that disagree) falls back to torch with a
warning, never to a wrong vector.
"""

from __future__ import annotations

import logging
import os
import secrets
import warnings
from pathlib import Path
from typing import Any

import numpy as np

logger = logging.getLogger(__name__)

_PROBE = "Who chairs the Senate Judiciary Committee, and when did the hearing take place?"
_MIN_AGREEMENT = 0.9999  # cosine between the ONNX and torch vectors of the probe
_OPSET = 17


def is_mean_pooled(model: Any) -> bool:
    """True for a model made of a transformer, mean pooling and (optionally) normalisation."""
    names = [type(module).__name__ for module in model]
    if names not in (["Transformer", "Pooling"], ["Transformer", "Pooling", "Normalize"]):
        return False
    return model[1].get_config_dict().get("pooling_mode") == "mean"


class OnnxQueryEncoder:
    """Embeds one text at a time with an ONNX export of a mean-pooled sentence-transformers model."""

    def __init__(self, session: Any, tokenizer: Any, max_length: int) -> None:
        self.session = session
        self.tokenizer = tokenizer
        self.max_length = max_length
        self.inputs = [node.name for node in session.get_inputs()]

    def encode(self, text: str) -> np.ndarray:
        """The text's unit-length float32 vector, cut to the model's window as torch would."""
        tokens = self.tokenizer([text], return_tensors="np", truncation=True, max_length=self.max_length)
        feed = {name: np.asarray(tokens[name], dtype=np.int64) for name in self.inputs}
        hidden = self.session.run(None, feed)[0]
        mask = feed["attention_mask"][..., None].astype(np.float32)
        pooled = (hidden * mask).sum(axis=1) / np.maximum(mask.sum(axis=1), 1e-9)
        return (pooled / np.maximum(np.linalg.norm(pooled, axis=1, keepdims=True), 1e-12))[0].astype(np.float32)


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
    temporary = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    try:
        with warnings.catch_warnings(), torch.no_grad():
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
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)


def load(model: Any, cache_dir: Path, weights_sha256: str) -> OnnxQueryEncoder | None:
    """The ONNX question encoder for this model, exported on first use; None to stay on torch."""
    if not is_mean_pooled(model):
        logger.info("questions are embedded by torch: the model is not a mean-pooled transformer")
        return None
    path = cache_dir / "onnx" / f"{weights_sha256[:16]}-opset{_OPSET}.onnx"
    try:
        import onnxruntime

        if not path.is_file():
            logger.info("exporting the model to ONNX for question embedding: %s", path)
            export(model, path)
        options = onnxruntime.SessionOptions()
        # One question is a few dozen tokens: more threads wait on each other more than they help.
        options.intra_op_num_threads = 1
        options.inter_op_num_threads = 1
        session = onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        encoder = OnnxQueryEncoder(session, model.tokenizer, int(model.max_seq_length))
        reference = model.encode([_PROBE], normalize_embeddings=True, show_progress_bar=False)[0]
        agreement = float(np.dot(encoder.encode(_PROBE), reference))
    except Exception as error:  # noqa: BLE001 (ImportError, OSError and the exporter's and runtime's many types)
        logger.warning("questions are embedded by torch; the ONNX export is unavailable: %s", error)
        return None
    if agreement < _MIN_AGREEMENT:
        logger.warning(
            "questions are embedded by torch: the ONNX export at %s disagrees (cosine %.6f)", path, agreement
        )
        return None
    return encoder
