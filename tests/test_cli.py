"""The `hf-steer` entry point: every command has --help, errors are one line with exit status 2."""

from __future__ import annotations

import argparse

import pytest

from hf_steer.cli import COMMANDS, build_parser, main


def _all_command_paths(parser: argparse.ArgumentParser, prefix=()):
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield prefix + (name,)
                yield from _all_command_paths(sub, prefix + (name,))


def test_every_command_is_registered():
    names = {path[0] for path in _all_command_paths(build_parser())}
    assert set(COMMANDS) <= names


def test_help_everywhere(capsys):
    paths = list(_all_command_paths(build_parser()))
    assert paths
    for path in [(), *paths]:
        with pytest.raises(SystemExit) as exit_info:
            main([*path, "--help"])
        assert exit_info.value.code == 0
        out = capsys.readouterr().out
        assert out.startswith("usage: hf-steer"), path


def test_help_shows_every_default_and_every_flag_has_help():
    """`--help` is where a user reads what a flag does and what happens without it."""
    missing = []
    for path in _all_command_paths(build_parser()):
        parser = build_parser()
        for name in path:
            sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
            parser = sub.choices[name]
        for action in parser._actions:
            if not action.option_strings or isinstance(action, (argparse._HelpAction, argparse._VersionAction)):
                continue
            flag = f"hf-steer {' '.join(path)} {action.option_strings[0]}"
            if not action.help:
                missing.append(f"{flag}: no help")
            elif action.default not in (None, False, argparse.SUPPRESS, []) and "default" not in action.help \
                    and "%(default)" not in action.help:
                missing.append(f"{flag}: default {action.default!r} not shown")
    assert not missing, "\n".join(missing)


def test_error_is_one_line(capsys):
    code = main(["demo", "--model", "./no/such/folder"])
    err = capsys.readouterr().err
    assert code == 2
    assert err.startswith("hf-steer: error: model './no/such/folder'")
    assert err.count("\n") == 1
