"""Command line: ``python -m robustbook run|build|render|sync|list``."""
from __future__ import annotations

import argparse
import sys

from ..data import DataNotAvailable
from ..validate import InvalidArgument
from .runner import ChapterFailed
from .specs import PROFILES, chapters, parse_value


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m robustbook", description="Execute the chapters of robustbook.")
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="execute one chapter with papermill")
    run.add_argument("chapter")
    run.add_argument("--profile", default="cpu", help=f"one of {', '.join(PROFILES)} (default cpu)")
    run.add_argument("-p", "--param", nargs=2, action="append", default=[], metavar=("NAME", "VALUE"),
                     help="override a parameter, e.g. -p eps 0.2 (repeatable)")
    run.add_argument("--output", help="where to write the executed notebook")
    run.add_argument("--ray", metavar="ADDRESS", help="run the chapter's independent units on Ray: 'auto' starts a "
                     "local Ray, an address joins a running cluster (sets ROBUSTBOOK_RAY)")
    run.add_argument("--into-book", action="store_true",
                     help="replace the book's executed chapter and results even when the profile differs from the "
                          "book's or parameters are overridden (otherwise such a run goes to _build/runs/)")
    build = sub.add_parser("build", help="execute every chapter and render the book")
    build.add_argument("--profile", default="cpu", help=f"one of {', '.join(PROFILES)} (default cpu)")
    build.add_argument("--chapter", action="append", help="only these chapters (repeatable)")
    build.add_argument("--ray", metavar="ADDRESS", help="as for run: 'auto' or a Ray cluster address")
    build.add_argument("--edition", default="instructor", choices=("instructor", "student"),
                       help="student: exercise solutions are left out of the HTML")
    render = sub.add_parser("render", help="render the book from already executed chapters")
    render.add_argument("--edition", default="instructor", choices=("instructor", "student"))
    sync = sub.add_parser("sync", help="regenerate the Colab install cells and notebooks/*.ipynb from the .py sources")
    sync.add_argument("--check", action="store_true", help="only report notebooks that are out of date")
    sub.add_parser("list", help="list chapters and their parameters")
    sub.add_parser("gpu-check", help="the gpu tests and the colab profile of chapters 1, 3, 4, 5, 6 on one GPU "
                                     "(writes _build/gpu-check.json; stops at once without CUDA)")
    args = parser.parse_args(argv)

    from . import render as rendering
    from .runner import book_profile, run_chapter

    if getattr(args, "ray", None):
        import os

        from ..executor import RAY

        os.environ[RAY] = args.ray          # the chapters' kernels inherit it
    try:
        if args.command == "run":
            overrides = {name: parse_value(value) for name, value in args.param}
            record = run_chapter(args.chapter, args.profile, overrides, args.output,
                                 into_book=True if args.into_book else None)
            print(f"{args.chapter}: executed in {record['seconds']} s -> {record['notebook']} "
                  f"(results: {record['results']})")
            if not record["into_book"]:
                print(f"the book's results ({book_profile()} profile) were left as they are; "
                      "--into-book replaces them")
        elif args.command == "build":
            print(f"book: {rendering.build(args.profile, args.chapter, edition=args.edition)}")
        elif args.command == "render":
            print(f"book: {rendering.render(edition=args.edition)}")
        elif args.command == "sync":
            changed = rendering.sync_colab(check=args.check)
            if args.check and changed:
                print(f"out of date: {', '.join(changed)} (run `python -m robustbook sync`)")
                return 1
            print(f"{'checked' if args.check else 'written'}: {len(chapters())} notebooks; changed: {changed or 'none'}")
        elif args.command == "gpu-check":
            from . import gpucheck

            report = gpucheck.run()
            print(f"gpu-check on {report['device']}: {len(report['chapters'])} chapters")
        else:
            for name, chapter in chapters().items():
                print(f"{name}: {chapter.title}")
                for pname, p in chapter.params.items():
                    print(f"    {pname:22s} {p.help}")
    except (InvalidArgument, ChapterFailed, DataNotAvailable) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    return 0
