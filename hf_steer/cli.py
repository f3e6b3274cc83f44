"""`hf-steer`: one subcommand group per method, plus `demo` and `push`.

Each method owns its own ``cli.py`` with ``register(subparsers)``; this file only wires them up,
sets logging and turns :class:`~hf_steer.errors.HfSteerError` into one clear line on stderr.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys

from .errors import HfSteerError

# command name -> module that registers it
COMMANDS = {
    "demo": "hf_steer.demo",
    "push": "hf_steer.hub",
    "elarablate": "hf_steer.elarablation.cli",
    "drugs": "hf_steer.drugs.cli",
    "memory": "hf_steer.memory.cli",
    "abc": "hf_steer.abcgpt.cli",
    "studio": "hf_steer.studio.cli",
}


class Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line (the usage block is one ``--help`` away)."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message} (see `{self.prog} --help`)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(
        prog="hf-steer",
        description="Steer what a language model writes: Elarablation, DRµGS, LoRA memory, abcGPT.",
    )
    parser.add_argument("-v", "--verbose", action="store_true",
                        help="show every library's own logging, warnings and loading bars")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    for module_name in COMMANDS.values():
        importlib.import_module(module_name).register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.verbose:
        os.environ["HF_STEER_VERBOSE"] = "1"  # worker processes started later keep everything too
    else:
        from .utils import quiet_third_party

        quiet_third_party()
    try:
        result = args.func(args)
    except HfSteerError as e:
        print(f"hf-steer: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("hf-steer: interrupted", file=sys.stderr)
        return 130
    return int(result or 0)


if __name__ == "__main__":
    sys.exit(main())
