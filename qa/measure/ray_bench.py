"""The build on Ray against the local build, on one machine: `python -m qa.measure.ray_bench --squad FILE`.

It writes SQuAD's articles as seed files (qa/measure/datasets.py), starts
the two-node loopback cluster (qa/measure/loopback.py) with one CPU per node
for two real cores, and times full builds into fresh index folders: locally
(one process, torch on its default threads) and through the cluster (two
embedding actors, one torch thread each). Both share the same cores, so the
ratio measures the overhead of Ray, not a speed-up; the breakdown says where
it goes. Prints a Markdown block for BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

from qa.measure.datasets import load_squad, write_corpus
from qa.measure.loopback import LoopbackCluster


def _build(seeds: Path, index_dir: Path, ray_address: str | None) -> dict[str, Any]:
    """One full build in this process; for Ray, with the driver's view of where the time went."""
    import qa
    from qa import indexing
    from qa.cluster.ray_build import ray_build

    # Both are timed from here, model load included: the local build loads it
    # in this process, the Ray build in its actors (its driver only hashes the weights).
    started = time.perf_counter()
    settings = qa.current_settings()
    encoder = qa.get_encoder(settings.model, settings.batch_size, settings.query_backend)
    if ray_address is None:
        index = indexing.build_index(seeds, index_dir, encoder, full=True)
        return {"total_s": time.perf_counter() - started, "sentences": len(index.sentences)}
    with ray_build(ray_address, encoder, settings.model, Path(tempfile.mkdtemp(prefix="qa-shards-"))) as cluster:
        connected = time.perf_counter()
        index = indexing.build_index(seeds, index_dir, encoder, full=True, remote=cluster)
        built = time.perf_counter()
    timings = cluster.timings
    documents = timings.documents
    ready = [meta["ready_at"] for meta in documents if "ready_at" in meta]
    per_worker = Counter[str]()
    for meta, source_file in zip(documents, cluster.sent, strict=True):
        entry = index.manifest.sources.get(source_file.source)
        if "worker" in meta and entry is not None:
            per_worker[meta["worker"]] += entry.sentences
    return {
        "total_s": time.perf_counter() - started,
        "sentences": len(index.sentences),
        "connect_s": connected - started,
        "hash_s": timings.called_at - connected,
        "pipeline_s": timings.pipeline_s,
        "first_row_s": timings.first_row_s,
        "actors_ready_s": max(ready) - timings.pipeline_started_at if ready else 0.0,
        "model_load_s": statistics.median([meta["load_s"] for meta in documents if "load_s" in meta] or [0.0]),
        "split_s": sum(meta.get("split_s", 0.0) for meta in documents),
        "embed_s": sum(meta.get("embed_s", 0.0) for meta in documents),
        "shards_s": timings.shards_s,
        "assemble_s": timings.assemble_s,
        "commit_s": built - timings.called_at - timings.pipeline_s - timings.assemble_s,
        "per_node": dict(per_worker),
    }


def _child(args: argparse.Namespace) -> int:
    import json

    print(json.dumps(_build(args.seeds, args.index, args.ray)))
    return 0


def _run_child(seeds: Path, index_dir: Path, ray_address: str | None, env: dict[str, str]) -> dict[str, Any]:
    """A build in a fresh interpreter, so that neither build inherits the other's warm caches or Ray."""
    import json
    import subprocess

    from qa.measure.processes import package_environment

    command = [
        sys.executable,
        "-m",
        "qa.measure.ray_bench",
        "--child",
        "--seeds",
        str(seeds),
        "--index",
        str(index_dir),
    ]
    if ray_address:
        command += ["--ray", ray_address]
    done = subprocess.run(command, capture_output=True, text=True, env=package_environment(env), check=False)
    if done.returncode != 0:
        raise SystemExit(f"the build failed:\n{done.stderr[-3000:]}")
    return dict(json.loads(done.stdout.strip().splitlines()[-1]))


def median_run(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """The run with the median total time (the lower middle one of an even count)."""
    ordered = sorted(runs, key=lambda run: float(run["total_s"]))
    return ordered[(len(ordered) - 1) // 2]


def to_markdown(locals_: list[dict[str, Any]], rays: list[dict[str, Any]], command: str) -> str:
    """The figures of interleaved local and Ray builds: median times, their ratio, the median Ray build's breakdown."""
    local, ray = median_run(locals_), median_run(rays)
    ratio = ray["total_s"] / local["total_s"]
    nodes = ray["per_node"]
    each = lambda runs: ", ".join(f"{run['total_s']:.1f}" for run in runs)  # noqa: E731
    lines = [
        f"Command: `{command}`",
        "",
        f"Full build of {local['sentences']:,} sentences on one machine of {os.cpu_count()} cores: locally, and through a "
        "two-node loopback Ray cluster (one CPU each: two embedding actors of one torch thread) sharing those cores. "
        f"{len(locals_)} builds of each, interleaved (local, Ray, local, ...), each in a fresh process; "
        "the medians are reported.",
        "",
        "| build | median time (s) | sentences/s | every run (s) |",
        "| --- | ---: | ---: | --- |",
        f"| local | {local['total_s']:.1f} | {local['sentences'] / local['total_s']:.1f} | {each(locals_)} |",
        f"| Ray | {ray['total_s']:.1f} | {ray['sentences'] / ray['total_s']:.1f} | {each(rays)} |",
        "",
        f"Ray / local, medians: **{ratio:.2f}×** (target ≤ 1.3×).",
        "",
        "Where the median Ray build's time went (driver's wall clock unless summed):",
        "",
        "| step | s |",
        "| --- | ---: |",
        f"| connect to the cluster (ray.init, job start) | {ray['connect_s']:.1f} |",
        f"| hash the seeds, plan | {ray['hash_s']:.1f} |",
        f"| until every actor had its model (from the pipeline's start) | {ray['actors_ready_s']:.1f} |",
        f"| model load in one actor (median) | {ray['model_load_s']:.1f} |",
        f"| first document back | {ray['first_row_s']:.1f} |",
        f"| whole pipeline (read, split, embed, back) | {ray['pipeline_s']:.1f} |",
        f"| extraction and splitting, summed over actors | {ray['split_s']:.1f} |",
        f"| embedding, summed over actors | {ray['embed_s']:.1f} |",
        f"| shards written as documents came back | {ray['shards_s']:.1f} |",
        f"| records and vectors read back from the shards | {ray['assemble_s']:.1f} |",
        f"| local commit (BM25, stores, windows, manifest) | {ray['commit_s']:.1f} |",
        "",
        "Throughput per node (sentences embedded there / the pipeline's time): "
        + ", ".join(
            f"node {name[:8]} {count / max(ray['pipeline_s'], 1e-9):.1f}" for name, count in sorted(nodes.items())
        )
        + ".",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m qa.measure.ray_bench", description=__doc__.split("\n")[0])
    parser.add_argument("--squad", type=Path, help="SQuAD v1.1 JSON file: its articles are the corpus")
    parser.add_argument("--articles", type=int, help="only the first N articles (a smoke run)")
    parser.add_argument("--work", type=Path, help="where the corpus and indexes go (default: a temporary folder)")
    parser.add_argument("--cpus", type=int, default=1, help="CPUs each of the two nodes offers (default 1)")
    parser.add_argument("--repeats", type=int, default=3, help="builds of each kind, interleaved (default 3)")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--seeds", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--index", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--ray", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        return _child(args)
    if args.squad is None or not args.squad.is_file():
        parser.error("--squad must name a SQuAD v1.1 JSON file")
    if args.repeats < 1:
        parser.error("--repeats must be at least 1")
    work = args.work or Path(tempfile.mkdtemp(prefix="qa-ray-bench-"))
    documents, _ = load_squad(args.squad)
    chosen = dict(sorted(documents.items())[: args.articles]) if args.articles else documents
    write_corpus(chosen, work / "seeds")
    report = lambda line: print(line, file=sys.stderr, flush=True)  # noqa: E731
    report(f"{len(chosen)} articles in {work / 'seeds'}")
    locals_: list[dict[str, Any]] = []
    rays: list[dict[str, Any]] = []
    for run in range(args.repeats):
        locals_.append(_run_child(work / "seeds", work / f"local-index-{run}", None, {}))
        report(f"local build {run + 1}: {locals_[-1]['total_s']:.1f} s")
        # A cluster of its own for each Ray build (its start is not timed), so that no idle
        # Ray process shares the cores with a local build.
        with LoopbackCluster(cpus=args.cpus) as cluster:
            rays.append(_run_child(work / "seeds", work / f"ray-index-{run}", cluster.address, cluster.environment()))
        report(f"Ray build {run + 1}: {rays[-1]['total_s']:.1f} s")
    command = f"python -m qa.measure.ray_bench --squad {args.squad}" + (
        f" --articles {args.articles}" if args.articles else ""
    )
    if args.repeats != 3:
        command += f" --repeats {args.repeats}"
    print(to_markdown(locals_, rays, command))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
