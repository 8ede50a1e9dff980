"""Command line: `python -m qa build|ask|info`. The only module that prints."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from dataclasses import replace
from pathlib import Path

from qa.config import Settings


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m qa", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    build = commands.add_parser("build", help="index the seed documents")
    build.add_argument("--seeds", type=Path, help="seeds folder (default: QA_SEEDS or seeds/)")
    build.add_argument("--index", type=Path, help="index folder (default: QA_INDEX or index/)")
    build.add_argument("--full", action="store_true", help="re-embed every document")

    ask = commands.add_parser("ask", help="answer a question with quotes from the sources")
    ask.add_argument("question")
    ask.add_argument("--index", type=Path, help="index folder (default: QA_INDEX or index/)")
    ask.add_argument("--k", type=int, default=3, help="how many sentences to consider (default 3)")
    ask.add_argument("--json", action="store_true", help="print the answer as JSON")

    info = commands.add_parser("info", help="what is indexed, with which model, and whether it is stale")
    info.add_argument("--index", type=Path, help="index folder (default: QA_INDEX or index/)")
    info.add_argument("--seeds", type=Path, help="seeds folder to compare with (default: QA_SEEDS or seeds/)")
    return parser


def _settings(args: argparse.Namespace) -> Settings:
    settings = Settings.from_env()
    if getattr(args, "seeds", None):
        settings = replace(settings, seeds_dir=args.seeds)
    if getattr(args, "index", None):
        settings = replace(settings, index_dir=args.index)
    return settings


def _build(args: argparse.Namespace, settings: Settings) -> int:
    from tqdm import tqdm

    import qa

    bar = tqdm(total=0, unit="text", desc="embedding", disable=None, file=sys.stderr)

    def progress(done: int, total: int) -> None:
        bar.total = total
        bar.n = done
        bar.refresh()

    try:
        index = qa.build_index(settings.seeds_dir, settings.index_dir, full=args.full, progress=progress)
    finally:
        bar.close()
    report = index.report
    assert report is not None
    for skipped in report.skipped:
        print(f"skipped {skipped.source}: {skipped.reason}", file=sys.stderr)
    counts = index.manifest["counts"]
    print(
        f"{'full' if report.full else 'incremental'} build of {index.path.parent}: "
        f"{len(report.added)} added, {len(report.changed)} changed, {len(report.removed)} removed, "
        f"{len(report.unchanged)} unchanged, {len(report.skipped)} skipped; "
        f"embedded {report.embedded_sentences} sentences, {report.embedded_passages} paragraphs and "
        f"{report.embedded_windows} windows of long sentences; "
        f"index holds {counts['sources']} documents, {counts['sentences']} sentences"
    )
    return 0


def _ask(args: argparse.Namespace, settings: Settings) -> int:
    import qa
    from qa.answer import answer_question, format_text

    if args.k < 1:
        raise qa.BadQuestionError("--k must be at least 1")
    index = qa.load_index(settings.index_dir)
    result = answer_question(
        index, args.question, k=args.k, min_confidence=settings.min_confidence, candidates=settings.candidates
    )
    print(json.dumps(result.to_dict(), indent=2, ensure_ascii=False) if args.json else format_text(result))
    return 0


def _info(args: argparse.Namespace, settings: Settings) -> int:
    import qa
    from qa.index import describe_stale

    index = qa.load_index(settings.index_dir)
    manifest = index.manifest
    model, counts = manifest["model"], manifest["counts"]
    print(f"index:     {index.path}")
    print(f"built:     {manifest['built_at']}")
    print(f"model:     {model['name']} ({model['dimension']}d, weights sha256 {model['weights_sha256'][:12]})")
    print(f"contents:  {counts['sources']} documents, {counts['passages']} paragraphs, {counts['sentences']} sentences")
    for source, entry in manifest["sources"].items():
        print(f"  {source}: {entry['passages']} paragraphs, {entry['sentences']} sentences")
    if settings.seeds_dir.is_dir():
        detail = describe_stale(index.stale(settings.seeds_dir))
        if detail:
            print(f"stale:     yes, against {settings.seeds_dir} ({detail}); run `python -m qa build`")
        else:
            print(f"stale:     no, matches {settings.seeds_dir}")
    return 0


def main(argv: list[str] | None = None) -> int:
    """Run one command; 0 on success, 1 on an error the user can fix."""
    args = _parser().parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s: %(message)s")
    from qa.errors import QAError

    handlers = {"build": _build, "ask": _ask, "info": _info}
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
