"""The encoder: the bundled model, unit float32 vectors, long texts, the fingerprint."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest

import qa
from qa.embed.encoder import Encoder, ModelLoadError, normalize


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
    assert qa.get_encoder() is qa.get_encoder(None, 16)


def test_one_torch_thread_limits_only_the_calling_thread() -> None:
    import threading

    import torch

    from qa.embed.encoder import one_torch_thread

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


QUESTIONS = (
    "Who chairs the Senate Judiciary Committee?",
    "How much does a kilogram of fentanyl cost?",
    "short",
    "A question " * 200,  # over the model's window: cut as torch cuts it
)


def test_questions_are_embedded_by_onnx_as_torch_would(encoder: Encoder) -> None:
    assert encoder.onnx_query is not None  # onnxruntime is a requirement: the fast path is taken
    for question in QUESTIONS:
        vector, _ = encoder.encode_query(question)
        reference = encoder.model.encode([question], normalize_embeddings=True)[0]
        assert vector.dtype == np.float32 and vector.shape == reference.shape
        assert float(np.dot(vector, reference)) > 0.99999


def test_onnx_export_is_written_once_and_reused(encoder: Encoder, qa_cache: Path) -> None:
    exports = list((qa_cache / "onnx").glob("*.onnx"))
    assert len(exports) == 1 and exports[0].name.startswith(encoder.fingerprint.weights_sha256[:16])
    written = exports[0].stat().st_mtime_ns
    again = Encoder(None, 32, "onnx", qa_cache)
    again.__dict__["model"] = encoder.model  # the same loaded weights, not a second load
    assert again.onnx_query is not None
    assert exports[0].stat().st_mtime_ns == written
    assert not [p for p in (qa_cache / "onnx").iterdir() if p.name.endswith(".tmp")]


def test_torch_backend_or_an_unwritable_cache_falls_back_to_torch(
    encoder: Encoder, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    torch_only = Encoder(None, 32, "torch", tmp_path)
    torch_only.__dict__["model"] = encoder.model
    assert torch_only.onnx_query is None
    blocked = tmp_path / "blocked"
    blocked.write_text("a file where the cache folder should be", encoding="utf-8")
    broken = Encoder(None, 32, "onnx", blocked)
    broken.__dict__["model"] = encoder.model
    with caplog.at_level("WARNING", logger="qa.onnx_query"):
        assert broken.onnx_query is None
    assert "embedded by torch" in caplog.text
    vector, _ = broken.encode_query(QUESTIONS[0])
    reference = encoder.model.encode([QUESTIONS[0]], normalize_embeddings=True)[0]
    assert float(np.dot(vector, reference)) > 0.99999


def test_query_backend_setting_is_checked() -> None:
    from qa.config import Settings
    from qa.errors import SettingsError

    assert Settings.from_env({"QA_QUERY_BACKEND": "torch"}).query_backend == "torch"
    with pytest.raises(SettingsError, match="onnx, torch"):
        Settings.from_env({"QA_QUERY_BACKEND": "tensorflow"})


def test_spans_are_pooled_from_the_same_forward_pass(encoder: Encoder) -> None:
    texts = ["The senator from Iowa chairs the Senate Judiciary Committee and leads the caucus.", "Short."]
    spans = [[(0, 22), (27, 65)], []]
    vectors, pooled = encoder.encode_with_spans(texts, spans)
    np.testing.assert_allclose(vectors, encoder.encode(texts), atol=1e-6)
    assert pooled.shape == (2, 384) and pooled.dtype == np.float16
    np.testing.assert_allclose(np.linalg.norm(pooled.astype(np.float32), axis=1), 1.0, atol=1e-3)
    # A pooled clause is closer to a question about it than the whole sentence is.
    query, _ = encoder.encode_query("Who chairs the Senate Judiciary Committee?")
    assert float(pooled[1].astype(np.float32) @ query) > float(vectors[0] @ query)


def test_spans_of_a_text_longer_than_the_model_take_its_own_vector(encoder: Encoder) -> None:
    long_text = " ".join(f"word{number}" for number in range(600))
    vectors, pooled = encoder.encode_with_spans([long_text], [[(0, 30), (40, 80)]])
    np.testing.assert_allclose(pooled.astype(np.float32), np.stack([vectors[0], vectors[0]]), atol=2e-3)


def test_a_checked_export_embeds_questions_without_loading_the_model(encoder: Encoder, qa_cache: Path) -> None:
    """The session's check is on record, so a new encoder takes the export as it is: same vectors, no torch model."""
    fresh = Encoder(None, 32, "onnx", qa_cache)
    assert fresh.onnx_query is not None
    assert "model" not in fresh.__dict__  # the sentence-transformers model was never loaded
    for question in QUESTIONS:
        vector, shortened = fresh.encode_query(question)
        expected, expected_shortened = encoder.encode_query(question)
        assert np.array_equal(vector, expected) and shortened == expected_shortened
    assert fresh.encode_query(QUESTIONS[-1])[1]  # the over-long question is still reported as cut
    assert not fresh.encode_query(QUESTIONS[0])[1]
    assert fresh.max_tokens == encoder.max_tokens  # what the note on a cut question says
    assert "model" not in fresh.__dict__


def test_a_record_that_no_longer_matches_means_checking_again(encoder: Encoder, tmp_path: Path) -> None:
    """Any change to what the check covered (export, tokenizer, libraries, the record itself) is not trusted."""
    import json
    import shutil

    from qa.embed import onnx_query

    weights = encoder.fingerprint.weights_sha256
    checked = Encoder(None, 32, "onnx", tmp_path)
    checked.__dict__["model"] = encoder.model
    assert checked.onnx_query is not None  # exported, checked against torch and recorded in tmp_path
    export = onnx_query.export_path(tmp_path, weights)
    record = export.with_name(export.stem + ".checked.json")
    tokenizer = export.with_name(export.stem + ".tokenizer.json")
    assert onnx_query.load_checked(encoder.path, tmp_path, weights) is not None
    kept = tmp_path / "kept"
    kept.mkdir()
    for path in (export, record, tokenizer):
        shutil.copy2(path, kept / path.name)

    def restore() -> None:
        for path in (export, record, tokenizer):
            shutil.copy2(kept / path.name, path)

    stale = json.loads(record.read_text(encoding="utf-8"))
    stale["versions"]["onnxruntime"] = "0.0.1"
    changes = {
        "an older library": lambda: record.write_text(json.dumps(stale), encoding="utf-8"),
        "a damaged record": lambda: record.write_text("{", encoding="utf-8"),
        "no record": record.unlink,
        "an altered export": lambda: export.write_bytes(export.read_bytes() + b"\0"),
        "an altered tokenizer": lambda: tokenizer.write_text(tokenizer.read_text(encoding="utf-8") + " "),
    }
    for change in changes.values():
        change()
        assert onnx_query.load_checked(encoder.path, tmp_path, weights) is None
        restore()
    changes["a damaged record"]()
    again = Encoder(None, 32, "onnx", tmp_path)
    again.__dict__["model"] = encoder.model
    assert again.onnx_query is not None  # checked against torch once more, and recorded again
    assert json.loads(record.read_text(encoding="utf-8")) == json.loads(
        (kept / record.name).read_text(encoding="utf-8")
    )
    assert onnx_query.load_checked(encoder.path, tmp_path, weights) is not None


def test_a_question_asked_from_a_new_process_imports_no_torch(seed_index: qa.Index, qa_cache: Path) -> None:
    """`qa ask` with the export checked once: no sentence-transformers, transformers or torch in the process."""
    import os
    import subprocess
    import sys

    index_dir = next(path for path in [seed_index.path, *seed_index.path.parents] if (path / "CURRENT").is_file())
    script = (
        "import sys, qa\n"
        f"answer = qa.answer('Who chairs the Senate Judiciary Committee?', index=qa.load_index({str(index_dir)!r}))\n"
        "print(answer.status, sorted(m for m in ('torch', 'transformers', 'sentence_transformers') if m in sys.modules))\n"
    )
    environment = {**os.environ, "QA_CACHE": str(qa_cache), "HF_HUB_OFFLINE": "1"}
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, env=environment, timeout=300, check=False
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split()[-1] == "[]" and done.stdout.startswith("answered"), done.stdout


def test_a_check_that_cannot_be_recorded_still_embeds_by_onnx(
    encoder: Encoder, qa_cache: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A cache where the record cannot be written (here a folder stands in its place) keeps the checked export."""
    import shutil

    from qa.embed import onnx_query

    weights = encoder.fingerprint.weights_sha256
    export = onnx_query.export_path(tmp_path, weights)
    export.parent.mkdir(parents=True)
    shutil.copy2(onnx_query.export_path(qa_cache, weights), export)
    (export.with_name(export.stem + ".checked.json") / "in-the-way").mkdir(parents=True)
    unrecorded = Encoder(None, 32, "onnx", tmp_path)
    unrecorded.__dict__["model"] = encoder.model
    with caplog.at_level("WARNING"):
        assert unrecorded.onnx_query is not None
    assert "could not be recorded" in caplog.text and "embedded by torch" not in caplog.text
    assert np.array_equal(unrecorded.encode_query(QUESTIONS[0])[0], encoder.encode_query(QUESTIONS[0])[0])
    assert onnx_query.load_checked(encoder.path, tmp_path, weights) is None  # so the next process checks again


def test_a_model_saved_in_float16_runs_in_float32(encoder: Encoder, tmp_path: Path) -> None:
    """Half the file (how train_embedder saves), the same vectors: the weights are widened on load."""
    import copy

    import torch

    halved = tmp_path / "half"
    copy.deepcopy(encoder.model).half().save(str(halved))  # a copy: the session's model stays as loaded
    texts = ["Who chairs the Senate Judiciary Committee?", "Fentanyl is made in China."]
    widened = Encoder(str(halved), query_backend="torch")
    assert {parameter.dtype for parameter in widened.model.parameters()} == {torch.float32}
    vectors = widened.encode(texts)
    assert vectors.dtype == np.float32
    assert np.all(np.sum(vectors * encoder.encode(texts), axis=1) > 0.9999)
