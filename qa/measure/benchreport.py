"""BENCHMARKS.md's speed section and the latency plot, from a `qa bench` run."""

from __future__ import annotations

from pathlib import Path

from qa.measure.bench import BenchResults, Latency


def _ms(value: float | None) -> str:
    return "unavailable" if value is None else f"{value:.1f} ms"


def _verdict(ok: bool) -> str:
    return "met" if ok else "**missed**"


# p50 targets for the seed and SQuAD rows: the compact index's (issue 12) and the verifier's (issue 15).
_LATENCY_TARGETS_MS = ((("issue 12", 30), ("issue 15", 25)), (("issue 12", 50), ("issue 15", 40)))


def to_markdown(results: BenchResults, command: str) -> str:
    """The speed section of BENCHMARKS.md: tables with each target and whether it was met."""
    lines = [
        f"Command: `{command}`",
        "",
        "| answer() latency, warm, one question at a time | questions | p50 | p95 | target |",
        "|---|---|---|---|---|",
    ]
    for number, latency in enumerate(results.latencies):
        target = ""
        if number < len(_LATENCY_TARGETS_MS):
            target = "; ".join(
                f"p50 ≤ {limit} ms ({issue}): {_verdict(latency.p50_ms <= limit)}"
                for issue, limit in _LATENCY_TARGETS_MS[number]
            )
        label = "seed" if number == 0 else "SQuAD dev"
        if number > 1:
            label += f" ×{round(latency.sentences / results.latencies[1].sentences)}"
        lines.append(
            f"| {label}, {latency.sentences:,} sentences | {latency.questions} | {latency.p50_ms:.1f} ms | {latency.p95_ms:.1f} ms | {target} |"
        )
    if results.threads:
        q = results.threads
        lines += [
            "",
            "| question embedding alone (median) | onnxruntime, one thread (used) | torch, one thread | torch default |",
            "|---|---|---|---|",
            (
                f"| all-MiniLM-L6-v2, one question at a time | {_ms(q.onnx_ms)} | {q.one_thread_ms:.1f} ms | "
                f"{q.default_ms:.1f} ms ({q.default_threads} threads) |"
            ),
        ]
    if results.throughput:
        t = results.throughput
        lines += [
            "",
            "| full build vs raw `SentenceTransformer.encode` of the same texts (medians) | value | target |",
            "|---|---|---|",
            f"| texts embedded (sentences, paragraphs, windows of sentences over 40 words) | {t.texts:,} for {t.sentences:,} sentences | |",
            f"| build: sentences per second | {t.sentences / t.build_s:.1f} ({t.build_s:.1f} s) | |",
            f"| raw encode: sentences per second | {t.sentences / t.encode_s:.1f} ({t.encode_s:.1f} s) | |",
            f"| build overhead over raw encoding | {100 * t.overhead:+.1f}% | ≤ 10%: {_verdict(t.overhead <= 0.10)} |",
        ]
    if results.add:
        a = results.add
        lines += [
            "",
            "| adding one document (median) | value | target |",
            "|---|---|---|",
            f"| incremental build onto {a.sentences_before:,} sentences | {a.build_s:.2f} s | < 5 s: {_verdict(a.build_s < 5)} |",
            f"| then the first answer from the new index | {a.first_answer_s:.2f} s | |",
        ]
    if results.cold:
        lines += [
            "",
            "| cold start to first answer (median) | total | import qa | load index | first answer (loads the model) | peak RSS | target |",
            "|---|---|---|---|---|---|---|",
        ]
        for cold in results.cold:
            lines.append(
                f"| {cold.sentences:,} sentences | {cold.total_s:.1f} s | {cold.import_s:.1f} s | {cold.load_s:.1f} s | "
                f"{cold.answer_s:.2f} s | {cold.peak_rss_mb:.0f} MB | ≤ 15 s: {_verdict(cold.total_s <= 15)} |"
            )
    if results.peak_rss_mb and results.latencies:
        largest = max(latency.sentences for latency in results.latencies)
        lines += [
            "",
            f"Peak RSS of the benchmark process, which held the {largest:,}-sentence index: {results.peak_rss_mb:,.0f} MB.",
        ]
    return "\n".join(lines)


def plot_latency(latencies: list[Latency], path: Path) -> None:
    """answer() p50 and p95 against the number of indexed sentences, as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    sizes = [latency.sentences for latency in latencies]
    figure, axes = plt.subplots(figsize=(6, 4), dpi=100)
    axes.plot(sizes, [latency.p50_ms for latency in latencies], marker="o", label="p50")
    axes.plot(sizes, [latency.p95_ms for latency in latencies], marker="s", label="p95")
    axes.set_xscale("log")
    axes.set_xlabel("sentences in the index")
    axes.set_ylabel("warm answer() latency (ms)")
    axes.set_title("qa answer() latency against corpus size")
    axes.grid(True, which="both", alpha=0.3)
    axes.legend()
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path)
    plt.close(figure)


SECTION_START = "<!-- qa bench: start -->"
SECTION_END = "<!-- qa bench: end -->"


def write_section(path: Path, body: str, name: str = "qa bench") -> None:
    """Replace the section `name` of a Markdown file (or append one), keeping the rest."""
    text = path.read_text(encoding="utf-8") if path.is_file() else "# Benchmarks\n"
    start, end = f"<!-- {name}: start -->", f"<!-- {name}: end -->"
    block = f"{start}\n{body}\n{end}"
    if start in text and end in text:
        before, rest = text.split(start, 1)
        after = rest.split(end, 1)[1]
        text = before + block + after
    else:
        text = text.rstrip("\n") + "\n\n" + block + "\n"
    path.write_text(text, encoding="utf-8")
