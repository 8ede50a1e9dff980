"""Compare sentence-transformers' torch, ONNX and int8 ONNX backends on the bundled model.

    python -m qa.measure.backends SQUAD.json [--work .cache/backends] [--texts 1000] [--questions 200]

The ONNX files are exported locally from the bundled weights (nothing is
downloaded) into a copy of the model folder under --work. The ONNX backend
needs `optimum-onnx[onnxruntime]`, which at the time of writing requires
transformers < 4.58, so it runs in its own environment, installed from
requirements-backends.txt (README, "Measuring"). Quality is the cosine
between each backend's vector and torch's for the same text: a backend whose
vectors match torch's ranks the same; one whose vectors drift must be
measured with `qa eval` before use.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import statistics
import time
from pathlib import Path
from typing import Any, Literal

import numpy as np

from qa.embed.encoder import bundled_model_path, one_torch_thread
from qa.measure.datasets import load_squad, sample


def _model(folder: Path, backend: Literal["torch", "onnx"], file_name: str | None = None) -> Any:
    from sentence_transformers import SentenceTransformer

    kwargs: dict[str, Any] = {"model_kwargs": {"file_name": file_name}} if file_name else {}
    return SentenceTransformer(str(folder), backend=backend, device="cpu", local_files_only=True, **kwargs)


def exported_models(work: Path) -> dict[str, Any]:
    """torch, ONNX and int8 ONNX models of the bundled weights, exporting what is missing."""
    from sentence_transformers.backend import export_dynamic_quantized_onnx_model

    folder = work / "all-MiniLM-L6-v2"
    if not folder.is_dir():
        shutil.copytree(bundled_model_path(), folder)
    onnx = _model(folder, "onnx")
    if not (folder / "onnx" / "model.onnx").is_file():
        onnx.save_pretrained(str(work / "exported"))
        (folder / "onnx").mkdir(exist_ok=True)
        shutil.copy2(work / "exported" / "onnx" / "model.onnx", folder / "onnx" / "model.onnx")
    quantized = "onnx/model_quint8_avx2.onnx"
    if not (folder / quantized).is_file():
        export_dynamic_quantized_onnx_model(onnx, "avx2", str(folder))
    return {"torch": _model(folder, "torch"), "onnx": onnx, "onnx-int8": _model(folder, "onnx", quantized)}


def time_backend(model: Any, texts: list[str], questions: list[str]) -> dict[str, float]:
    """Question latency one at a time (one torch thread, as qa embeds questions) and batch throughput."""
    model.encode(questions[:2])
    latencies = []
    for question in questions:
        with one_torch_thread():
            started = time.perf_counter()
            model.encode([question], normalize_embeddings=True)
            latencies.append(1000 * (time.perf_counter() - started))
    started = time.perf_counter()
    model.encode(texts, batch_size=32, normalize_embeddings=True)
    seconds = time.perf_counter() - started
    return {"question_p50_ms": statistics.median(latencies), "texts_per_s": len(texts) / seconds}


def compare(models: dict[str, Any], texts: list[str], questions: list[str]) -> dict[str, dict[str, float]]:
    """Speed of each backend and how closely its vectors agree with torch's."""
    reference = models["torch"].encode(texts, batch_size=32, normalize_embeddings=True)
    results = {}
    for name, model in models.items():
        vectors = model.encode(texts, batch_size=32, normalize_embeddings=True)
        cosines = np.sum(vectors * reference, axis=1)
        results[name] = {
            **time_backend(model, texts, questions),
            "cosine_to_torch_mean": float(cosines.mean()),
            "cosine_to_torch_min": float(cosines.min()),
        }
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m qa.measure.backends", description=__doc__.split("\n")[0])
    parser.add_argument(
        "squad", type=Path, help="SQuAD v1.1 JSON: its paragraphs' sentences and questions are the texts"
    )
    parser.add_argument("--work", type=Path, default=Path(".cache/backends"))
    parser.add_argument("--texts", type=int, default=1000)
    parser.add_argument("--questions", type=int, default=200)
    args = parser.parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    documents, questions = load_squad(args.squad)
    import blingfire

    sentences = [s for text in documents.values() for s in blingfire.text_to_sentences(text).splitlines() if s.strip()]
    texts = random.Random(0).sample(sentences, min(args.texts, len(sentences)))
    asked = [q.question for q in sample(questions, args.questions, seed=0)]
    results = compare(exported_models(args.work), texts, asked)
    print(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
