"""The encoder: the bundled model, unit float32 vectors, long texts, the fingerprint."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest

import qa
from qa.embed import Encoder, ModelLoadError, normalize


def test_encode_gives_unit_float32_rows(encoder: Encoder) -> None:
    vectors = encoder.encode(["Fentanyl is made in China.", "Grassley chairs the committee."])
    assert vectors.shape == (2, 384) and vectors.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    assert encoder.encode([]).shape == (0, 384)


def test_similar_texts_are_closer_than_unrelated_ones(encoder: Encoder) -> None:
    query, _ = encoder.encode_query("Who makes fentanyl?")
    near, far = encoder.encode(["Chemists in China make fentanyl.", "The choir sang in the cathedral."])
    assert float(near @ query) > float(far @ query) + 0.2


def test_long_text_is_the_mean_of_overlapping_windows(encoder: Encoder) -> None:
    text = " ".join(f"Sentence number {n} talks about fentanyl and heroin." for n in range(60))
    windows = encoder.windows(text)
    assert len(windows) >= 2
    assert text.startswith(windows[0]) and text.endswith(windows[-1])
    assert all(window in text for window in windows)
    [vector] = encoder.encode([text])
    expected = normalize(encoder.encode(windows).sum(axis=0, keepdims=True))[0]
    np.testing.assert_allclose(vector, expected, atol=1e-5)
    assert encoder.windows("Short text.") == ["Short text."]


def test_progress_reports_every_batch(encoder: Encoder) -> None:
    calls: list[tuple[int, int]] = []
    texts = [f"Text number {n}." for n in range(encoder.batch_size + 3)]
    encoder.encode(texts, lambda done, total: calls.append((done, total)))
    assert calls == [(encoder.batch_size, len(texts)), (len(texts), len(texts))]


def test_encode_query_says_when_the_question_was_cut(encoder: Encoder) -> None:
    vector, shortened = encoder.encode_query("Who chairs the committee?")
    assert vector.shape == (384,) and not shortened
    _, shortened = encoder.encode_query("fentanyl " * 400)
    assert shortened


def test_fingerprint_hashes_the_bundled_weights(encoder: Encoder) -> None:
    fingerprint = encoder.fingerprint
    assert (fingerprint.name, fingerprint.dimension) == ("all-MiniLM-L6-v2", 384)
    weights = [encoder.path / name for name in ("model.safetensors", "pytorch_model.bin")]
    digest = hashlib.sha256()
    for path in weights:
        if path.is_file():
            digest.update(path.read_bytes())
    assert fingerprint.weights_sha256 == digest.hexdigest()


def test_model_folder_must_exist_locally(tmp_path: Path) -> None:
    with pytest.raises(ModelLoadError, match="never downloaded"):
        Encoder(str(tmp_path / "sentence-transformers" / "all-MiniLM-L6-v2"))
    with pytest.raises(ModelLoadError, match="never downloaded"):
        Encoder("sentence-transformers/all-MiniLM-L6-v2")  # a hub name is not a folder


def test_get_encoder_is_one_instance_per_model() -> None:
    assert qa.get_encoder() is qa.get_encoder(None, 32)


def test_one_torch_thread_limits_only_the_calling_thread() -> None:
    import threading

    import torch

    from qa.embed import one_torch_thread

    before = torch.get_num_threads()
    inside, release = threading.Event(), threading.Event()
    seen: dict[str, int] = {}

    def question_thread() -> None:
        with one_torch_thread():
            seen["inside"] = torch.get_num_threads()
            inside.set()
            release.wait(10)
        seen["after"] = torch.get_num_threads()

    worker = threading.Thread(target=question_thread)
    worker.start()
    inside.wait(10)
    seen["other thread meanwhile"] = torch.get_num_threads()
    release.set()
    worker.join(10)
    assert seen["inside"] == 1
    assert seen["other thread meanwhile"] == before
    with one_torch_thread():
        assert torch.get_num_threads() == 1
    assert torch.get_num_threads() == before
