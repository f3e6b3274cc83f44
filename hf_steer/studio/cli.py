"""``hf-steer studio``: parse the flags into a :class:`StudioConfig`, serve the app. Thin.

The flags come from the config's fields (:func:`hf_steer.cli_args.add_config_arguments`), so a default
and its help live in one place. Importing this file imports neither gradio nor torch (``hf-steer --help``
stays fast); the command imports them when it runs.
"""

from __future__ import annotations

from ..cli_args import add_config_arguments, config_from_args
from .config import StudioConfig


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "studio", help="one web page (Gradio) for the four methods: memory chat, DRµGS, abcGPT dial, Elarablation",
        description="Serve the hf-steer studio: a Gradio app with one tab per method, on the bundled model or --model. "
        "Open the printed URL in a browser; Ctrl-C stops it.",
    )
    add_config_arguments(p, StudioConfig, aliases={"memory_folder": ["--memory"], "abc_folder": ["--abc"]})
    p.set_defaults(func=cmd_studio)


def cmd_studio(args) -> int:
    from .app import launch

    launch(config_from_args(StudioConfig, args))
    return 0
