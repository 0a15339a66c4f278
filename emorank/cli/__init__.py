"""Command line (top layer: may import every other subpackage): ``emorank <command>`` or
``python -m emorank <command>``; ``--help`` documents each command.

:mod:`~emorank.cli.parser` builds the argument parser, :mod:`~emorank.cli.checks` checks values and paths before any
work, :mod:`~emorank.cli.commands` runs each command; :func:`main` ties them together with one-line errors and
exit status 2 (bad input) or 130 (interrupted).
"""
from __future__ import annotations

import argparse
import sys

from emorank.cli.checks import UsageError, check_args
from emorank.cli.parser import build_parser


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Parse and check the command line: every number in its range and every output path usable, before anything
    is loaded, trained or written. A bad value ends here: a one-line message and exit status 2 (argparse's)."""
    args = build_parser().parse_args(argv)
    try:
        check_args(args)
    except UsageError as err:
        print(f"emorank {args.command}: error: {err}", file=sys.stderr)
        raise SystemExit(2) from None
    return args


INTERRUPTED = ("interrupted (Ctrl-C); every feature finished so far stays in the cache, so the same command goes "
               "on from there")


def main(argv: list[str] | None = None) -> int:
    """Run a command; its exit status (2: a bad value or input, 130: interrupted)."""
    try:
        args = build_parser().parse_args(argv)  # argparse's own refusals: SystemExit(2) with the usage
        try:
            check_args(args)
        except UsageError as err:
            print(f"error: {err}", file=sys.stderr)
            return 2
        from emorank.data.audio import AudioError
        from emorank.data.manifest import ManifestError
        from emorank.model.checkpoint import CheckpointError

        try:
            return args.func(args)
        except (ManifestError, CheckpointError, AudioError, ValueError, FileNotFoundError) as err:
            print(f"error: {err}", file=sys.stderr)
            return 2
    except KeyboardInterrupt:  # a second Ctrl-C (train, compare) or the first one (other commands)
        print(f"\n{INTERRUPTED}", file=sys.stderr)
        return 130
