"""CLI flags built from config dataclasses, so a default and its help live in one place: the field.

In the style of transformers' ``HfArgumentParser`` (and TRL's ``TrlParser``): every dataclass field
becomes a ``--kebab-case`` flag (the ``--snake_case`` spelling is accepted too), its help is the field's
``metadata={"help": ...}``, its default the field's default, and ``Literal`` types become choices.
Unlike ``HfArgumentParser`` it adds fields to any (sub)parser, takes an ``include`` list (a
``TrainingArguments`` subclass has ~150 fields; a command shows the ones that matter) and imports
nothing heavy, so ``hf-steer --help`` stays fast.

One spelling per idea across the command groups: ``--load-in-4bit``, ``--learning-rate``,
``--threads``; the older spellings (``--4bit``, ``--lr``) stay as aliases.

    add_config_arguments(parser, DrugsConfig, include=["theta_q", "depth"])
    config = config_from_args(DrugsConfig, args)
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import sys
import types
import typing
from collections.abc import Iterable, Sequence
from typing import Any, Literal, Union, get_args, get_origin

from .errors import HfSteerError

MAX_THREADS = 1024  # torch.set_num_threads overflows (a traceback) on absurd counts, and a typo must not start 10k threads

# Older spellings kept working after the flags were unified (field name -> extra flags).
ALIASES: dict[str, list[str]] = {
    "load_in_4bit": ["--4bit"],
    "learning_rate": ["--lr"],
}


def flag_names(field_name: str, extra: Iterable[str] = ()) -> list[str]:
    """``--kebab-case`` first (what help shows), then ``--snake_case`` and any aliases."""
    kebab = "--" + field_name.replace("_", "-")
    names = [kebab]
    if "_" in field_name:
        names.append("--" + field_name)
    names += [a for a in (*ALIASES.get(field_name, ()), *extra) if a not in names]
    return names


def _unwrap_optional(tp: Any) -> tuple[Any, bool]:
    origin = get_origin(tp)
    if origin is Union or (hasattr(types, "UnionType") and origin is types.UnionType):
        args = [a for a in get_args(tp) if a is not type(None)]
        if len(args) == 1:
            return args[0], True
        return str, True  # e.g. ``str | bool``: pass through as text, the config validates it
    return tp, False


def _positive_help(text: str, default: Any) -> str:
    text = (text or "").strip()
    if default is None or default is dataclasses.MISSING or default == []:
        return text
    shown = default if not isinstance(default, (list, tuple)) else " ".join(map(str, default))
    return f"{text} (default: {shown})".strip()


def _field_default(field: dataclasses.Field) -> Any:
    if field.default is not dataclasses.MISSING:
        return field.default
    if field.default_factory is not dataclasses.MISSING:  # type: ignore[misc]
        return field.default_factory()  # type: ignore[misc]
    return dataclasses.MISSING


def number(kind: type, flag: str = ""):
    """An argparse type that turns a bad value into one line naming the flag (argparse exits 2)."""

    def parse(text: str):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a{'n integer' if kind is int else ' number'}") from None
        if kind is float and not math.isfinite(value):  # nan and inf are never a setting
            raise argparse.ArgumentTypeError(f"{text!r} is not a finite number")
        return value

    parse.__name__ = kind.__name__
    return parse


def add_config_arguments(
    parser: argparse.ArgumentParser,
    config_cls: type,
    *,
    include: Sequence[str] | None = None,
    exclude: Iterable[str] = (),
    aliases: dict[str, Sequence[str]] | None = None,
    defaults: dict[str, Any] | None = None,
    required: Iterable[str] = (),
) -> list[str]:
    """Add one flag per dataclass field of ``config_cls`` to ``parser``; returns the field names added.

    Args:
        include: only these fields, in this order (default: every init field).
        exclude: fields to leave out.
        aliases: extra flag spellings per field (``{"theta": ["-t"]}``).
        defaults: CLI-only defaults that differ from the field's (say why where you pass one).
        required: fields the command needs on the line.
    """
    hints = typing.get_type_hints(config_cls, globalns=vars(sys.modules[config_cls.__module__]))
    by_name = {f.name: f for f in dataclasses.fields(config_cls) if f.init}
    names = list(include) if include is not None else list(by_name)
    unknown = [n for n in names if n not in by_name]
    if unknown:
        raise KeyError(f"{config_cls.__name__} has no field(s) {unknown}")  # a programming error, not user input
    skip, required, defaults, aliases = set(exclude), set(required), defaults or {}, aliases or {}
    added = []
    for name in names:
        if name in skip:
            continue
        field = by_name[name]
        default = defaults.get(name, _field_default(field))
        tp, _ = _unwrap_optional(hints.get(name, str))
        shown = dataclasses.MISSING if name in required else default  # a required flag has no default to show
        kwargs: dict[str, Any] = {"dest": name, "help": _positive_help(field.metadata.get("help", ""), shown)}
        if name in required:
            kwargs["required"] = True
        elif default is not dataclasses.MISSING:
            kwargs["default"] = default
        origin = get_origin(tp)
        if tp is bool:
            kwargs["action"] = argparse.BooleanOptionalAction
        elif origin is Literal:
            kwargs["choices"] = list(get_args(tp))
            kwargs["type"] = type(kwargs["choices"][0])
        elif origin in (list, tuple, Sequence) or tp in (list, tuple):
            item = (get_args(tp) or (str,))[0]
            item, _ = _unwrap_optional(item)
            kwargs["nargs"] = "+"
            kwargs["type"] = number(item, name) if item in (int, float) else str
            if default is not dataclasses.MISSING and not default:
                # An empty default: repeating the flag adds to the list (``--dose A=0.3 --dose H=0.1``),
                # as ``action="append"`` did before. A non-empty default is replaced, never extended.
                kwargs["action"] = "extend"
        elif tp in (int, float):
            kwargs["type"] = number(tp, name)
        else:
            kwargs["type"] = str
        parser.add_argument(*flag_names(name, aliases.get(name, ())), **kwargs)
        added.append(name)
    return added


def config_from_args(config_cls: type, args: argparse.Namespace, **overrides: Any):
    """``config_cls`` built from the parsed flags that name its fields (plus ``overrides``).

    A config's own validation (``__post_init__``) raises :class:`HfSteerError`; any other ``ValueError``
    or ``TypeError`` from it becomes one, so a bad value never ends in a traceback.
    """
    names = {f.name for f in dataclasses.fields(config_cls) if f.init}
    values = {k: v for k, v in vars(args).items() if k in names}
    values.update(overrides)
    try:
        return config_cls(**values)
    except HfSteerError:
        raise
    except (ValueError, TypeError) as e:
        raise HfSteerError(f"bad setting for {config_cls.__name__}: {str(e).splitlines()[0]}") from None


def positive(kind: type = int, allow_zero: bool = False):
    """An argparse type for a count or size: ``positive(int)``, ``positive(float, allow_zero=True)``."""
    parse_number = number(kind)

    def parse(text: str):
        value = parse_number(text)
        if value < 0 or (value == 0 and not allow_zero):
            raise argparse.ArgumentTypeError(f"{text!r} must be {'0 or more' if allow_zero else 'above 0'}")
        return value

    parse.__name__ = kind.__name__
    return parse


def add_threads_argument(parser: argparse.ArgumentParser) -> None:
    """``--threads N``: torch CPU threads, the same flag in every group."""
    parser.add_argument("--threads", type=positive(int), default=None,
                        help="torch CPU threads (default: torch's choice)")


def apply_threads(threads: int | None) -> None:
    """Set torch's CPU threads from ``--threads`` (one line when the value is impossible)."""
    if threads is None:
        return
    if not 1 <= threads <= MAX_THREADS:
        raise HfSteerError(f"--threads {threads} is not a thread count: use 1 to {MAX_THREADS}")
    import torch

    torch.set_num_threads(threads)
