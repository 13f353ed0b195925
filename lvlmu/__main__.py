"""Command line: `python -m lvlmu study --profile full`."""
from __future__ import annotations

import argparse
import logging
import sys


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="lvlmu", description="Run the lvlmu study pipeline and build its book.")
    commands = parser.add_subparsers(dest="command", required=True)
    study = commands.add_parser("study", help="run the notebooks (skipping unchanged ones) and build the book")
    study.add_argument("--profile", default="full", help="full (the study, the default) or quick (a first look, and what CI runs)")
    study.add_argument("--force", action="store_true", help="rerun every notebook even when its inputs are unchanged")
    study.add_argument("--no-book", action="store_true", help="run the notebooks but do not build the book")
    study.add_argument("--only", default=None, metavar="METHOD",
                       help="run only this method's grid runs (the other runs keep their results), then the chapters")
    study.add_argument("--jobs", type=int, default=None, help="notebooks at once where their needs allow (default: the profile's, 2)")
    study.add_argument("--kernel", default=None, help="Jupyter kernel for papermill (default: the registered 'lvlmu' kernel)")
    args = parser.parse_args(argv)

    from .study import PROFILES, run_study

    if args.profile not in PROFILES:
        parser.error(f"unknown profile {args.profile!r}; choose from {sorted(PROFILES)}")
    # Stream each notebook's output (training progress included) and papermill's cell progress bar.
    logging.basicConfig(level=logging.WARNING, format="%(message)s")
    logging.getLogger("papermill").setLevel(logging.INFO)
    try:
        report = run_study(args.profile, build=not args.no_book, force=args.force, kernel=args.kernel, stream_output=True,
                           jobs=args.jobs, only=args.only)
    except (RuntimeError, ValueError) as error:
        print(f"[lvlmu] {error}", file=sys.stderr)
        return 1
    return 1 if report["failed"] else 0


if __name__ == "__main__":
    sys.exit(main())
