"""``hf-steer studio``: parse the flags into a :class:`StudioConfig`, serve the app. Thin.

Importing this file imports neither gradio nor torch, so ``hf-steer --help`` stays fast; both are
imported when the command runs.
"""

from __future__ import annotations

import argparse
import dataclasses

from .config import StudioConfig

# flag spellings beyond the field's own kebab-case name
_ALIASES = {"memory_folder": ["--memory"], "abc_folder": ["--abc"]}


def _add_config_arguments(parser: argparse.ArgumentParser) -> None:
    """One flag per StudioConfig field, help and default from the field (booleans get --no-X too)."""
    for f in dataclasses.fields(StudioConfig):
        flag = "--" + f.name.replace("_", "-")
        names = [flag, *_ALIASES.get(f.name, [])]
        helptext = f.metadata.get("help", "")
        if f.type in (bool, "bool"):
            parser.add_argument(*names, dest=f.name, action=argparse.BooleanOptionalAction, default=f.default,
                                help=f"{helptext} (default: %(default)s)")
        elif f.type in (int, "int"):
            parser.add_argument(*names, dest=f.name, type=int, default=f.default, help=f"{helptext} (default: %(default)s)")
        elif f.type in ("int | None",):
            parser.add_argument(*names, dest=f.name, type=int, default=f.default, help=helptext)
        else:
            parser.add_argument(*names, dest=f.name, default=f.default,
                                help=helptext + (" (default: %(default)s)" if f.default is not None else ""))


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "studio", help="one web page (Gradio) for the four methods: memory chat, DRµGS, abcGPT dial, Elarablation",
        description="Serve the hf-steer studio: a Gradio app with one tab per method, on the bundled model or --model. "
        "Open the printed URL in a browser.",
    )
    _add_config_arguments(p)
    p.set_defaults(func=cmd_studio)


def cmd_studio(args) -> int:
    from .app import launch

    config = StudioConfig(**{f.name: getattr(args, f.name) for f in dataclasses.fields(StudioConfig)})
    launch(config)
    return 0
