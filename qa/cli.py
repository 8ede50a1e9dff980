"""Command line: `python -m qa build|ask|chat|info|eval|bench|loadtest|train`. The only module that prints."""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import replace
from pathlib import Path

from qa.config import Settings, ray_address
from qa.errors import QAError
from qa.search.fusion import RETRIEVERS
from qa.storage.manifest import SourceEntry
from qa.storage.vectors import EXACT_LIMIT


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m qa", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    build = commands.add_parser("build", help="index the seed documents")
    build.add_argument("--seeds", type=Path, help="seeds folder (default: QA_SEEDS or seeds/)")
    build.add_argument("--index", type=Path, help="index folder (default: QA_INDEX or index/)")
    build.add_argument("--full", action="store_true", help="re-embed every document")
    build.add_argument(
        "--ray",
        metavar="auto|ADDRESS",
        help="read, split and embed the new and changed files on this Ray cluster (default: QA_RAY_ADDRESS, else here)",
    )

    ask = commands.add_parser("ask", help="answer a question with quotes from the sources")
    ask.add_argument("question")
    ask.add_argument("--index", type=Path, help="index folder (default: QA_INDEX or index/)")
    ask.add_argument("--k", type=int, default=3, help="how many sentences to consider (default 3)")
    ask.add_argument("--json", action="store_true", help="print the answer as JSON")
    ask.add_argument(
        "--source",
        action="append",
        metavar="GLOB",
        help="answer only from sources matching this path or glob, as citations name them (repeatable)",
    )

    chat = commands.add_parser("chat", help="ask questions one a line; follow-ups lean on the earlier turns")
    chat.add_argument("--index", type=Path, help="index folder (default: QA_INDEX or index/)")
    chat.add_argument("--k", type=int, default=3, help="how many sentences to consider (default 3)")
    chat.add_argument("--source", action="append", metavar="GLOB", help="answer only from these sources (repeatable)")

    info = commands.add_parser("info", help="what is indexed, with which model, and whether it is stale")
    info.add_argument("--index", type=Path, help="index folder (default: QA_INDEX or index/)")
    info.add_argument("--seeds", type=Path, help="seeds folder to compare with (default: QA_SEEDS or seeds/)")
    evaluate = commands.add_parser("eval", help="score retrieval and answers against questions with known answers")
    evaluate.add_argument(
        "file", type=Path, help="our .jsonl questions (question, answer, answerable) or SQuAD v1.1 .json"
    )
    evaluate.add_argument(
        "--retriever",
        choices=(*RETRIEVERS, "all"),
        default="all",
        help="which ranking to score (default: all, side by side)",
    )
    evaluate.add_argument("--limit", type=int, help="ask the first N questions after shuffling (default: all)")
    evaluate.add_argument("--seed", type=int, default=0, help="shuffle with random.Random(SEED) (default 0)")
    evaluate.add_argument(
        "--articles",
        choices=("all", "even", "odd"),
        help=(
            "SQuAD: ask about all articles (the default), or only even- or odd-numbered ones (the fusion was fitted"
            " on even ones; odd ones are held out); with --followups, pairs from even ones unless told"
        ),
    )
    evaluate.add_argument(
        "--work", type=Path, default=Path(".cache/squad"), help="SQuAD: where its corpus and index are cached"
    )
    evaluate.add_argument("--index", type=Path, help="JSONL: index folder (default: QA_INDEX or index/)")
    evaluate.add_argument("--seeds", type=Path, help="JSONL: seeds folder (default: QA_SEEDS or seeds/)")
    evaluate.add_argument("--json", action="store_true", help="print the metrics as JSON")
    evaluate.add_argument(
        "--followups",
        action="store_true",
        help="SQuAD: score follow-up pairs derived from its articles, even-numbered by default (a follow-up JSONL is detected)",
    )
    evaluate.add_argument(
        "--latency",
        type=int,
        default=0,
        metavar="ROUNDS",
        help="follow-ups: also time warm answer() with and without history, ROUNDS times over the pairs",
    )
    evaluate.add_argument(
        "--standalone",
        action="store_true",
        help="JSONL: also ask each question after an unrelated earlier turn; the figures must not move",
    )

    bench = commands.add_parser("bench", help="measure latency, build speed and start-up; write BENCHMARKS.md")
    bench.add_argument(
        "squad", type=Path, help="SQuAD v1.1 .json: the corpus and questions for the large-index figures"
    )
    bench.add_argument(
        "--work", type=Path, default=Path(".cache/squad"), help="where the SQuAD corpus and index are cached"
    )
    bench.add_argument("--seeds", type=Path, help="seed-scale corpus (default: QA_SEEDS or seeds/)")
    bench.add_argument("--questions", type=int, default=200, help="questions timed at each size (default 200)")
    bench.add_argument("--copies", default="1,3,10", help="latency curve: copies of the SQuAD corpus (default 1,3,10)")
    bench.add_argument("--rounds", type=int, default=3, help="repeats of build, add and cold-start timings (default 3)")
    bench.add_argument(
        "--out", type=Path, default=Path("BENCHMARKS.md"), help="Markdown file whose bench section is rewritten"
    )
    bench.add_argument("--plot", type=Path, default=Path("docs/latency.png"), help="latency-against-size plot (PNG)")
    bench.add_argument(
        "--scale",
        type=int,
        metavar="N",
        help="instead: build and serve an index of N SQuAD-derived sentences and measure it (qa/measure/scale.py)",
    )
    bench.add_argument(
        "--document", type=Path, help="with --scale: the real document added to the large index (default: a seed)"
    )

    # Listed here for --help; main() hands everything after "train" to the training command's own parser.
    commands.add_parser(
        "train",
        add_help=False,
        help="train the answer verifier (python -m qa.measure.train_verifier; `qa train --help` for its options)",
    )

    load = commands.add_parser("loadtest", help="drive the web app with concurrent clients over loopback")
    load.add_argument("--clients", type=int, default=20, help="concurrent gradio_client clients (default 20)")
    load.add_argument("--seconds", type=float, default=60.0, help="how long to ask (default 60)")
    load.add_argument("--max-requests", type=int, default=100_000, help="at most this many questions per client")
    load.add_argument(
        "--questions", type=Path, help="questions, one per line or JSONL (default: 50 made from indexed sentences)"
    )
    load.add_argument(
        "--rebuild",
        nargs="*",
        choices=("cli", "app"),
        default=[],
        help="rebuild during the run: 'cli' in another process, 'app' through the app (evenly spaced)",
    )
    load.add_argument(
        "--client",
        choices=("gradio_client", "rest"),
        default="gradio_client",
        help="how clients call the app: gradio_client (default) or Gradio's REST API with httpx",
    )
    load.add_argument("--url", help="a running app on 127.0.0.1 (default: start app.py on a free port)")
    load.add_argument("--seeds", type=Path, help="seeds folder (default: QA_SEEDS or seeds/)")
    load.add_argument("--index", type=Path, help="index folder (default: QA_INDEX or index/)")
    load.add_argument("--json", type=Path, help="also write the figures to this JSON file")
    return parser


def _settings(args: argparse.Namespace) -> Settings:
    """The QA_* settings, read here at the edge for the whole process, with this command's folders over them."""
    import qa

    settings = qa.reload_settings()
    if getattr(args, "seeds", None):
        settings = replace(settings, seeds_dir=args.seeds)
    if getattr(args, "index", None):
        settings = replace(settings, index_dir=args.index)
    if getattr(args, "ray", None):
        settings = replace(settings, ray_address=ray_address("--ray", args.ray))
    return settings


@contextmanager
def _progress_bar(description: str, unit: str) -> Iterator[Callable[[int, int], None]]:
    """A progress callback(done, total) drawing a bar on stderr (only when it is a terminal)."""
    from tqdm import tqdm

    bar = tqdm(total=0, unit=unit, desc=description, disable=None, file=sys.stderr)

    def progress(done: int, total: int) -> None:
        bar.total = total
        bar.n = done
        bar.refresh()

    try:
        yield progress
    finally:
        bar.close()


def _build(args: argparse.Namespace, settings: Settings) -> int:
    import qa

    with _progress_bar("embedding", "text") as progress:
        index = qa.build_index(
            settings.seeds_dir, settings.index_dir, full=args.full, progress=progress, ray_address=settings.ray_address
        )
    report = index.report
    assert report is not None
    for skipped in report.skipped:
        print(f"skipped {skipped.source}: {skipped.reason}", file=sys.stderr)
    counts = index.manifest.counts
    print(
        f"{'full' if report.full else 'incremental'} build of {index.path.parent}: "
        f"{len(report.added)} added, {len(report.changed)} changed, {len(report.removed)} removed, "
        f"{len(report.unchanged)} unchanged, {len(report.skipped)} skipped; "
        f"embedded {report.embedded_sentences} sentences and {report.embedded_passages} paragraphs; "
        f"index holds {counts.sources} documents, {counts.sentences} sentences"
    )
    return 0


def _ask(args: argparse.Namespace, settings: Settings) -> int:
    import qa
    from qa.quotes import answer_question
    from qa.render.text import format_text

    if args.k < 1:
        raise qa.BadQuestionError("--k must be at least 1")
    index = qa.load_index(settings.index_dir)
    result = answer_question(
        index,
        args.question,
        k=args.k,
        min_confidence=settings.min_confidence,
        candidates=settings.candidates,
        verifier=qa.api.verifier(),
        sources=args.source,
    )
    print(json.dumps(result.to_dict(), indent=2, ensure_ascii=False) if args.json else format_text(result))
    return 0


# Lines `qa chat` takes as commands rather than questions (matched whole, in any case).
CHAT_NEW = frozenset(["/new"])
CHAT_QUIT = frozenset(["/quit", "/exit"])
CHAT_HINT = (
    "One question a line; follow-ups lean on the earlier turns. /new starts a new conversation; /quit or Ctrl-D ends."
)


def _chat_lines(interactive: bool) -> Iterator[str]:
    """The chat's input lines, without their line ends, until end of input.

    In a terminal each is read after a prompt, with line editing (readline)
    where Python has it.
    """
    if interactive:
        with suppress(ImportError):  # not every platform's Python has readline; input() works without
            import readline  # noqa: F401  (imported for its side effect: input() gets line editing)
        while True:
            try:
                yield input("> ")
            except EOFError:
                print(file=sys.stderr)  # end the prompt's line
                return
    for line in sys.stdin:
        yield line.rstrip("\r\n")


def _chat(args: argparse.Namespace, settings: Settings) -> int:
    """Read questions from stdin, one a line, until /quit or end of input; each answer as `qa ask` prints it.

    Blank lines are skipped, so that a stray Enter loses nothing; /new forgets the earlier turns.
    """
    import qa
    from qa.quotes import answer_question
    from qa.records import Turn
    from qa.render.text import format_text

    if args.k < 1:
        raise qa.BadQuestionError("--k must be at least 1")
    index = qa.load_index(settings.index_dir)
    verifier = qa.api.verifier()  # loaded and checked once, before the first question
    interactive = sys.stdin.isatty()
    if interactive:
        print(CHAT_HINT, file=sys.stderr, flush=True)
    history: list[Turn] = []
    for line in _chat_lines(interactive):
        question = line.strip()
        if not question:
            continue
        if question.lower() in CHAT_QUIT:
            break
        if question.lower() in CHAT_NEW:
            history = []
            print("(a new conversation: earlier questions are forgotten)", file=sys.stderr, flush=True)
            continue
        try:
            result = answer_question(
                index,
                question,
                k=args.k,
                min_confidence=settings.min_confidence,
                candidates=settings.candidates,
                verifier=verifier,
                history=history,
                sources=args.source,
            )
        except QAError as error:
            print(f"error: {error}", file=sys.stderr, flush=True)
            continue
        history.append(Turn(question, result))
        print(format_text(result), flush=True)
        print(flush=True)
    return 0


def _source_lines(sources: dict[str, SourceEntry]) -> list[str]:
    """A count per format, then one line per document, grouped by format."""
    by_format = Counter(entry.format for entry in sources.values())
    lines = ["formats:   " + ", ".join(f"{count} {kind}" for kind, count in sorted(by_format.items()))]
    for source, entry in sorted(sources.items(), key=lambda item: (item[1].format, item[0])):
        title = f' "{entry.title}"' if entry.title else ""
        pages = f" ({entry.pages} pages)" if entry.pages else ""
        lines.append(
            f"  {entry.format:<5} {source}{title}{pages}: {entry.passages} paragraphs, {entry.sentences} sentences"
        )
    return lines


def _info(args: argparse.Namespace, settings: Settings) -> int:
    import qa
    from qa.reader.index import describe_stale

    index = qa.load_index(settings.index_dir)
    manifest = index.manifest
    model, counts = manifest.model, manifest.counts
    print(f"index:     {index.path}")
    print(f"built:     {manifest.built_at}")
    print(f"model:     {model.name} ({model.dimension}d, weights sha256 {model.weights_sha256[:12]})")
    print(f"contents:  {counts.sources} documents, {counts.passages} paragraphs, {counts.sentences} sentences")
    kinds = ", ".join(f"{name} {store.kind}" for name, store in index.stores.items())
    if settings.store.kind == "qdrant":
        where = settings.store.url or f"local folder {settings.store.path}"
        collections = ", ".join(getattr(store, "collection", "") for store in index.stores.values())
        print(f"search:    {kinds} (Qdrant at {where}: collections {collections})")
    else:
        print(f"search:    {kinds} (exact up to {EXACT_LIMIT:,} vectors, approximate past it)")
    segment_count = len(manifest.segments)
    print(f"segments:  {segment_count} (BM25, word windows and texts; see qa/storage/segments.py)")
    for line in _source_lines(manifest.sources):
        print(line)
    for source, entry in manifest.skipped.items():
        print(f"skipped:   {source}: {entry.reason}")
    if settings.seeds_dir.is_dir():
        detail = describe_stale(index.stale(settings.seeds_dir, settings.max_file_mb))
        if detail:
            print(f"stale:     yes, against {settings.seeds_dir} ({detail}); run `python -m qa build`")
        else:
            print(f"stale:     no, matches {settings.seeds_dir}")
    return 0


def _eval(args: argparse.Namespace, settings: Settings) -> int:
    import qa
    from qa.measure import evaluate
    from qa.measure.datasets import sample

    if args.limit is not None and args.limit < 1:
        raise QAError("--limit must be at least 1")
    if args.followups or (args.file.suffix == ".jsonl" and args.file.is_file() and _is_followup_file(args.file)):
        return _eval_followups(args, settings)
    retrievers = RETRIEVERS if args.retriever == "all" else (args.retriever,)
    with _progress_bar("embedding", "text") as progress:
        index, questions = evaluate.prepare(
            args.file, settings, work=args.work, articles=args.articles or "all", progress=progress
        )
    chosen = sample(questions, args.limit, args.seed)
    with _progress_bar("asking", "question") as progress:
        report = evaluate.evaluate(
            index,
            chosen,
            retrievers,
            hide_own_source=any(q.source for q in chosen),
            min_confidence=settings.min_confidence,
            candidates=settings.candidates,
            progress=progress,
            verifier=qa.api.verifier(),
        )
    print(json.dumps(report.to_dict(), indent=2) if args.json else evaluate.format_table(report))
    if args.standalone:
        from qa.measure.followups import standalone_check

        check = standalone_check(index, chosen, settings.min_confidence, settings.candidates, qa.api.verifier())
        print(json.dumps(check, indent=2) if args.json else _format_standalone(check))
    return 0


def _is_followup_file(path: Path) -> bool:
    from qa.measure.followups import is_followup_file

    return is_followup_file(path)


def _eval_followups(args: argparse.Namespace, settings: Settings) -> int:
    """Follow-up hit@1 with and without history, over a follow-up JSONL or SQuAD's even (or --articles) articles."""
    import qa
    from qa.measure import evaluate, followups

    with _progress_bar("embedding", "text") as progress:
        if evaluate.is_squad(args.file):
            index, _ = evaluate.prepare(args.file, settings, work=args.work, progress=progress)
            pairs = followups.derive_squad_followups(args.file, articles=args.articles or "even")
        else:
            index, _ = evaluate.prepare(args.file, settings, work=args.work, progress=progress, read_questions=False)
            pairs = followups.load_followups(args.file)
    if args.limit is not None:
        import random

        random.Random(args.seed).shuffle(pairs)
        pairs = pairs[: args.limit]
    if not pairs:
        raise qa.QAError(f"{args.file} holds no follow-up pairs")
    with _progress_bar("asking", "pair") as progress:
        figures = followups.evaluate_followups(
            index, pairs, settings.min_confidence, settings.candidates, progress, qa.api.verifier()
        )
    if args.latency:
        figures["latency"] = followups.history_latency(
            index, pairs, args.latency, settings.candidates, qa.api.verifier()
        )
    if args.json:
        print(json.dumps(figures, indent=2))
        return 0
    print(
        f"{figures['pairs']} follow-up pairs ({figures['taken as follow-ups']} taken as follow-ups, "
        f"{figures['searched again with history']} more searched again with history): "
        f"hit@1 alone {figures['hit@1 alone']:.3f}, with history {figures['hit@1 with history']:.3f}"
    )
    print(
        f"  answered with the right sentence first: alone {figures['answered right alone']:.3f}, "
        f"with history {figures['answered right with history']:.3f}; "
        f"answered wrong with history {figures['answered wrong with history']:.3f}"
    )
    if "answered with its article hidden" in figures:
        print(f"  answered with history and the article hidden: {figures['answered with its article hidden']:.3f}")
    if args.latency:
        timed = figures["latency"]
        print(
            f"warm answer(), median of {timed['calls each']:.0f} calls each: alone {timed['median ms alone']:.2f} ms, "
            f"with history {timed['median ms with history']:.2f} ms, added {timed['median added ms']:.2f} ms"
        )
        if timed["pairs searched twice"]:
            print(
                f"  the {timed['pairs searched twice']:.0f} pairs searched twice: added "
                f"{timed['median added ms, searched twice']:.2f} ms"
            )
    return 0


def _format_standalone(check: dict) -> str:
    lines = [f"standalone check: {check['questions']} questions, {check['changed']} with other top hits or answers"]
    for name in ("alone", "after an unrelated turn"):
        figures = check[name]
        shown = ", ".join(f"{key} {'n/a' if value is None else f'{value:.3f}'}" for key, value in figures.items())
        lines.append(f"  {name}: {shown}")
    return "\n".join(lines)


def _bench_scale(args: argparse.Namespace, settings: Settings) -> int:
    import shlex

    from qa.measure import benchreport, scale

    if args.scale < 1 or args.questions < 2:
        raise QAError("--scale must be at least 1 and --questions at least 2")
    document = args.document
    if document is None:
        seeds = sorted(settings.seeds_dir.glob("*.txt")) if settings.seeds_dir.is_dir() else []
        if not seeds:
            raise QAError(f"no .txt seed in {settings.seeds_dir} to add; pass --document FILE")
        document = seeds[0]
    if not document.is_file():
        raise QAError(f"document {document} does not exist")
    work = args.work if args.work != Path(".cache/squad") else Path(".cache/scale")
    results = scale.measure(
        args.squad.resolve(),
        work.resolve(),
        args.scale,
        document.resolve(),
        args.questions,
        report=lambda line: print(line, file=sys.stderr, flush=True),
    )
    command = f"python -m qa bench {shlex.quote(str(args.squad))} --scale {args.scale} --questions {args.questions}"
    body = scale.to_markdown(results, command)
    benchreport.write_section(args.out, body, name="qa bench --scale")
    print(body)
    return 0


def _bench(args: argparse.Namespace, settings: Settings) -> int:
    import shlex

    import qa
    from qa.measure import bench, benchreport

    try:
        copies = tuple(int(part) for part in args.copies.split(","))
    except ValueError:
        raise QAError(f"--copies takes whole numbers separated by commas, not {args.copies!r}") from None
    if not args.squad.is_file():
        raise QAError(f"SQuAD file {args.squad} does not exist")
    if args.scale is not None:
        return _bench_scale(args, settings)
    if args.questions < 2 or args.rounds < 1 or any(count < 1 for count in copies):
        raise QAError("--questions must be at least 2, --rounds and every --copies value at least 1")
    encoder = qa.get_encoder(settings.model, settings.batch_size, settings.query_backend)
    results = bench.measure(
        args.squad,
        args.work,
        settings.seeds_dir,
        encoder,
        args.questions,
        copies,
        rounds=args.rounds,
        report=lambda line: print(line, file=sys.stderr, flush=True),
    )
    body = benchreport.to_markdown(
        results,
        ("" if settings.verifier else "QA_VERIFIER=off ")
        + f"python -m qa bench {shlex.quote(str(args.squad))} --questions {args.questions} --copies {args.copies} --rounds {args.rounds}",
    )
    benchreport.plot_latency(results.latencies, args.plot)
    # The image is linked relative to the Markdown file, so the link works wherever the repository is read.
    link = Path(os.path.relpath(args.plot.resolve(), args.out.resolve().parent)).as_posix()
    benchreport.write_section(args.out, body + f"\n\n![answer() latency against corpus size]({link})")
    print(body)
    return 0


def _loadtest(args: argparse.Namespace, settings: Settings) -> int:
    import tempfile

    from qa.measure import loadtest
    from qa.measure.served import App, check_loopback

    if args.clients < 1 or args.max_requests < 1 or not args.seconds > 0:
        raise QAError("--clients and --max-requests must be at least 1, --seconds above 0")
    app = None
    if args.url:
        url = check_loopback(args.url)
        if "app" in args.rebuild:
            print("note: an 'app' rebuild needs the app started with --allow-rebuild", file=sys.stderr)
    else:
        log = Path(tempfile.mkdtemp(prefix="qa-loadtest-")) / "app.log"
        print(f"starting app.py (log: {log})", file=sys.stderr, flush=True)
        environment = {"QA_SEEDS": str(settings.seeds_dir), "QA_INDEX": str(settings.index_dir)}
        app = App(["--allow-rebuild"] if "app" in args.rebuild else [], environment, log)
        url = app.url
    peak = None
    try:
        if app:
            app.wait()
        questions = (
            loadtest.read_questions(args.questions)
            if args.questions
            else loadtest.questions_from(settings.index_dir, 50)
        )
        print(
            f"{args.clients} clients asking {len(questions)} questions at {url} for {args.seconds:g} s",
            file=sys.stderr,
            flush=True,
        )
        report = loadtest.run(
            url,
            questions,
            args.clients,
            args.seconds,
            args.max_requests,
            args.rebuild,
            settings.seeds_dir,
            settings.index_dir if (app or args.index) else None,
            report=lambda line: print(line, file=sys.stderr, flush=True),
            client_kind=args.client,
        )
    finally:
        if app:
            peak = app.stop()
    report.app_peak_rss_mb = peak
    summary = report.summary()
    if args.json:
        args.json.write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    print(loadtest.format_report(summary))
    failed = report.errors or not report.requests or not all(r.ok for r in report.rebuilds)
    return 1 if failed else 0


def main(argv: list[str] | None = None) -> int:
    """Run one command; 0 on success, 1 on an error the user can fix."""
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["train"]:
        from qa.measure import train_verifier

        return train_verifier.main(argv[1:], prog="python -m qa train")
    args = _parser().parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s: %(message)s")
    # The parsers warn about every quirk of a file they still read; a file they
    # cannot read is reported once, by the build, as skipped.
    for noisy in ("pypdf", "trafilatura"):
        logging.getLogger(noisy).setLevel(logging.ERROR)
    handlers = {
        "build": _build,
        "ask": _ask,
        "chat": _chat,
        "info": _info,
        "eval": _eval,
        "bench": _bench,
        "loadtest": _loadtest,
    }
    try:
        return handlers[args.command](args, _settings(args))
    except QAError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
