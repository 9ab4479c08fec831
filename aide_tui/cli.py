"""Command line: flags -> settings -> the Textual app or the headless front end.

Every setting is a flag (kebab-case) with the same name as in aide.toml
(snake_case).  Bad input prints one line naming the file or flag and the fix,
and exits with code 2.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path
from typing import Any, NoReturn

from . import __version__
from .errors import UserError
from .settings import Settings, resolve


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:  # one line, not usage + traceback
        raise UserError(f"{message} (see aide-tui --help)")


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(
        prog="aide-tui",
        description="Run the AIDE tree search over ML solution scripts for PROJECT (a directory with task.md and data).",
        epilog="Settings can also live in PROJECT/aide.toml (snake_case names); flags override it.",
    )
    p.add_argument("project", nargs="?", help="project directory holding task.md and the data files")
    p.add_argument("--version", action="version", version=f"aide-tui {__version__}")
    mode = p.add_argument_group("mode")
    mode.add_argument(
        "--headless", action="store_true", help="run without the TUI, printing one line per event of note"
    )
    mode.add_argument("--json", action="store_true", help="with --headless: print JSON lines (one event per line)")
    mode.add_argument(
        "--verbose",
        "-v",
        action="store_true",
        help="with --headless: also print the LLM's reply and the scripts' output",
    )
    mode.add_argument("--resume", action="store_true", help="resume the unfinished run (or the one named by --run)")
    mode.add_argument("--new", action="store_true", help="start a new run even if an unfinished one exists")
    mode.add_argument(
        "--run",
        metavar="NAME",
        help="with --resume, --export, --worktree or --recover-journal: which run (default: the newest)",
    )
    mode.add_argument(
        "--recover-journal",
        action="store_true",
        help="rebuild a damaged journal.jsonl from its readable lines and the run's git commits, then stop",
    )
    mode.add_argument(
        "--export",
        nargs=2,
        metavar=("NODE", "DIR"),
        help="write a node's solution and outputs to DIR; NODE is 'best' or a node id",
    )
    mode.add_argument(
        "--refit",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="with --export: re-run the node on all training rows (the holdout included) in the sandbox and export "
        "that submission.csv (default: on for 'best', off for a node id)",
    )
    mode.add_argument(
        "--worktree",
        nargs=2,
        metavar=("NODE", "DIR"),
        help="check a node out as a git worktree at DIR on a new branch named after DIR (git worktree add); NODE is 'best' or a node id",
    )
    group = p.add_argument_group("settings (same names as in aide.toml)")
    defaults = Settings()
    for f in dataclasses.fields(Settings):
        if f.metadata.get("internal"):
            continue
        flag = "--" + f.name.replace("_", "-")
        default = getattr(defaults, f.name)
        shown = {
            "memory_limit": "half of RAM / workers",
            "workers": "cores, at most 4",
            "preload": "numpy, pandas, scipy, sklearn... when installed",
        }.get(f.name, default)
        help_text = f.metadata.get("help", "")
        if "(default:" not in help_text:  # some settings' help already says it in their own words
            help_text += f" (default: {shown})"
        list_flag: dict[str, Any] = {"action": "append"}
        kind: dict[str, Any] = {
            "bool": {"action": argparse.BooleanOptionalAction},
            "list[str]": list_flag,
            "list[str] | None": list_flag,
        }.get(str(f.type), {})
        metavar: dict[str, Any] = {} if str(f.type) == "bool" else {"metavar": f.name.upper()}
        group.add_argument(flag, dest=f.name, default=None, help=help_text.replace("%", "%%"), **kind, **metavar)
    return p


def main(argv: list[str] | None = None) -> int:
    try:
        return _main(argv)
    except UserError as exc:
        print(f"aide-tui: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


def _main(argv: list[str] | None) -> int:
    args = build_parser().parse_args(argv)
    if args.project is None:
        raise UserError("give a PROJECT directory, e.g. aide-tui examples/house-prices")
    from .project import Project

    project = Project.open(args.project)
    overrides = {f.name: getattr(args, f.name) for f in dataclasses.fields(Settings) if not f.metadata.get("internal")}
    settings = resolve(project.settings_file, overrides)
    if args.resume and args.new:
        raise UserError("--resume and --new exclude each other; pick one")
    if args.json and not args.headless:
        raise UserError("--json needs --headless")
    if args.recover_journal:
        from .records import recover_run

        print(recover_run(project, args.run))
        return 0
    if args.export:
        from .export import export_node, scores

        refit = args.refit if args.refit is not None else args.export[0] == "best"
        dest, node = export_node(
            project, args.export[0], Path(args.export[1]), args.run, settings=settings, refit=refit
        )
        print(f"exported node #{node.id} ({scores(node)}) to {dest}")
        fit = "all training rows (refit)" if refit else "the run's training rows, less the hidden holdout"
        print(f"run it on your data: cd {dest} && python solution.py; its submission.csv is fit on {fit}")
        return 0
    if args.worktree:
        from .export import worktree_node

        dest, branch = worktree_node(project, args.worktree[0], Path(args.worktree[1]), args.run)
        print(f"worktree at {dest} on new branch {branch}")
        return 0
    from .project import InstanceLock

    # Held from here until the process ends, before any question, form or resume advice: a
    # second aide-tui on this project is told that this one runs (with its pid), whatever
    # this one is doing yet; the engine takes the same lock again when it is built.
    with InstanceLock(project, shared=True):
        resume: bool | None = True if args.resume else False if args.new else None
        if args.headless:
            return _headless(project, settings, resume, args)
        from .app.app import run_app

        return run_app(project.root, settings, resume)


def _headless(project, settings: Settings, resume: bool | None, args: argparse.Namespace) -> int:
    from .engine import build_engine
    from .headless import HeadlessPrinter, run_headless

    if resume is None:
        pending = project.unfinished_run()
        if pending is not None and not project.finished_a_node(pending):
            # Nothing to resume (e.g. refused or stopped at its start): start over rather than block.
            print(f"note: run {pending} never finished a node; starting a new run", file=sys.stderr)
            resume = False
        elif pending is not None:
            resume = _ask_resume(project, pending)
        else:
            resume = False
    printer = HeadlessPrinter(json_lines=args.json, verbose=args.verbose)
    engine = build_engine(
        project.root, settings, resume=resume, listener=printer, run_name=args.run if resume else None
    )
    return run_headless(engine)


def _ask_resume(project, run: str) -> bool:
    if not sys.stdin.isatty():
        raise UserError(
            f"{project.root}: run {run} is unfinished; pass --resume to continue it or --new to start another"
        )
    answer = input(f"Run {run} is unfinished. Resume it? [Y/n] ").strip().lower()
    return answer in ("", "y", "yes")


if __name__ == "__main__":
    sys.exit(main())
