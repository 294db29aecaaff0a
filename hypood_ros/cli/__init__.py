"""`hypood` command line: one subcommand per module in this package.

Each subcommand module defines HELP (one line for `hypood --help`) and `configure(parser)`, which adds
its options and sets `func(args) -> int`. Only the command being run is configured, so `hypood --help`
works on the base install (no torch), and a command whose optional dependencies are missing says which
extra to install, in its `--help` and when run.

Errors: a HypoodError is printed as one line, `hypood: error: MESSAGE`, with exit status 2 for a command
line that cannot work (UsageError, ConfigError, argparse's own errors) and 1 for a failure while working.
A missing optional package is one line naming the extra. Anything else is a bug and keeps its traceback.
"""
from __future__ import annotations

import argparse
import importlib
import re
import sys
from typing import List, Optional

from hypood_ros import __version__
from hypood_ros.cli.extras import COMMAND_EXTRAS, extra_modules, install_hint, missing, missing_message, pip_name
from hypood_ros.cli.parser import HelpFormatter, Parser
from hypood_ros.errors import HypoodError, MissingDependencyError, exit_code
from hypood_ros.memory import keep_freed_memory

#: Subcommand modules, in the order `hypood --help` lists them.
COMMANDS = ["run", "convert", "export", "build_engine", "replay", "calibrate", "fit_sml", "eval", "train", "generate",
            "demo", "fleet"]

_ANSI = re.compile(r"\x1b\[[0-9;]*m")


def _command_in(argv: List[str]) -> Optional[str]:
    """The subcommand named on the command line (the first word that is not an option)."""
    for word in argv:
        if not word.startswith("-"):
            return word
    return None


def _unavailable(parser: argparse.ArgumentParser, command: str, absent: List[str]) -> str:
    """A command whose optional dependencies are missing: its help and its run say what to install."""
    hint = install_hint(COMMAND_EXTRAS[command])
    parser.description = (f"{parser.description}\n\nNot available here: needs {', '.join(absent)}, which "
                          f"{'is' if len(absent) == 1 else 'are'} not installed. Install with: {hint}")
    return f"hypood {command} needs {', '.join(absent)}, which {'is' if len(absent) == 1 else 'are'} not " \
           f"installed: {hint}"


def build_parser(argv: Optional[List[str]] = None) -> Parser:
    """The `hypood` parser, with the options of the command named in argv (all commands when None)."""
    parser = Parser(prog="hypood", description="Out-of-distribution obstacle segmentation for vehicle cameras: "
                    "run, calibrate, evaluate, export and replay models.",
                    epilog="`hypood COMMAND --help` describes each command and its options.")
    parser.add_argument("--version", action="version", version=f"hypood_ros {__version__}",
                        help="print the version and exit")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True, parser_class=Parser)
    chosen = _command_in(argv) if argv is not None else None
    if chosen in [c.replace("_", "-") for c in COMMANDS]:
        parser.command = chosen
    for module_name in COMMANDS:
        module = importlib.import_module(f"hypood_ros.cli.{module_name}")
        name = module_name.replace("_", "-")
        extra = COMMAND_EXTRAS.get(name)
        description = module.__doc__.strip().split("\n")[0].replace("`", "")
        if extra:
            description += f"\n\nNeeds the optional dependencies: {install_hint(extra)}"
        sub = subparsers.add_parser(name, help=module.HELP, description=description, formatter_class=HelpFormatter)
        if argv is None or name == chosen:
            absent = [pip_name(m) for m in missing(extra_modules(extra))] if extra else []
            if absent:
                parser.unavailable = _unavailable(sub, name, absent)
            else:
                module.configure(sub)
    return parser


def _one_line(text: str) -> str:
    text = _ANSI.sub("", str(text)).strip()
    return " ".join(part.strip() for part in text.splitlines() if part.strip()) or "failed"


def error(message: str) -> None:
    print(f"hypood: error: {_one_line(message)}", file=sys.stderr, flush=True)


def main(argv: Optional[List[str]] = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    command = _command_in(argv)
    keep_freed_memory()  # frames and networks reuse their memory (hypood_ros/memory.py)
    try:
        parser = build_parser(argv)
        unavailable = getattr(parser, "unavailable", None)
        if unavailable and not {"-h", "--help"} & set(argv):
            raise MissingDependencyError(unavailable)
        args = parser.parse_args(argv)
        limit = getattr(args, "max_image_pixels", None)
        if limit is not None:
            from hypood_ros.images import set_max_pixels

            set_max_pixels(limit)
        if getattr(args, "no_progress", False):
            from hypood_ros.cli.console import hide_progress

            hide_progress()
        return int(args.func(args) or 0)
    except HypoodError as exc:
        error(str(exc))
        return exit_code(exc)
    except ModuleNotFoundError as exc:
        message = missing_message(exc.name or "", command)
        if message is None:
            raise
        error(message)
        return 1
    except KeyboardInterrupt:
        error("interrupted")
        return 130


if __name__ == "__main__":
    sys.exit(main())
