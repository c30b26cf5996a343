"""The parser of ``sklearn-taskres`` and its entry point, ``main``."""

import argparse
import sys
import warnings

from . import _cache, _evaluate, _fit, _label, _predict, _review, _sort, _zero_shot
from ._common import (
    EXIT_FAILURE,
    EXIT_INTERRUPTED,
    EXIT_USAGE,
    PROG,
    CommandError,
    common_options,
    register_model_config_file,
)

#: The commands in the order of ``--help``; each module adds its parser and handler.
_COMMANDS = (_fit, _predict, _evaluate, _zero_shot, _review, _label, _sort, _cache)


def build_parser():
    """The argument parser of ``sklearn-taskres``.

    Returns
    -------
    parser : argparse.ArgumentParser

    Examples
    --------
    >>> from sklearn_taskres.cli import build_parser
    >>> args = build_parser().parse_args(["predict", "model.skops", "photos/", "--proba"])
    >>> args.paths, args.proba, args.output
    (['photos/'], True, None)
    """
    common = common_options()
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="TaskRes few-shot image classification on CLIP (open_clip), from the "
        "command line. Labelled folders are laid out as DIR/<class>/<images>.",
        epilog="exit status: 0 success, 1 runtime failure (such as unavailable weights), "
        "2 usage or input problem, 3 some images could not be read (predict, sort: the others "
        "are done), 130 interrupted",
    )
    parser.add_argument("--model-config", metavar="FILE.json", default=None,
                        help="register this JSON open_clip model config, named after the "
                        "file's stem, before running (for custom or tiny models, offline)")
    parser.add_argument("--debug", action="store_true", default=False,
                        help="show the traceback of errors instead of one line")
    parser.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for command in _COMMANDS:
        command.add_parser(commands, common)
    return parser


def _version():
    from .._version import __version__

    return __version__


# ---------------------------------------------------------------- entry point


def _exit_status(exc):
    """The exit status of an expected error, or None for a bug (shown with its traceback)."""
    from .._clip import WeightsUnavailableError

    if isinstance(exc, CommandError):
        return exc.status
    if isinstance(exc, WeightsUnavailableError):
        return EXIT_FAILURE
    # The library reports bad input (files, labels, options) as ValueError.
    if isinstance(exc, (FileNotFoundError, ValueError)):
        return EXIT_USAGE
    if isinstance(exc, (OSError, RuntimeError, MemoryError)):
        return EXIT_FAILURE
    return None


def _show_warning(message, category, filename, lineno, file=None, line=None):
    print(f"{PROG}: warning: {message}", file=sys.stderr if file is None else file)


def main(argv=None):
    """Run ``sklearn-taskres`` with ``argv`` and return its exit status.

    Parameters
    ----------
    argv : list of str, default=None
        The arguments without the program name; None reads ``sys.argv``.

    Returns
    -------
    status : int
        0 on success, 1 for a runtime failure, 2 for a usage or input problem,
        130 when interrupted (see the module docstring).
    """
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as exc:  # --help, --version and usage errors
        return exc.code if isinstance(exc.code, int) else EXIT_USAGE
    try:
        with warnings.catch_warnings():
            warnings.showwarning = _show_warning
            if args.model_config is not None:
                register_model_config_file(args.model_config)
            return args.handler(args)
    except KeyboardInterrupt:
        if args.debug:
            raise
        print(f"{PROG}: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except Exception as exc:
        from .._clip import WeightsUnavailableError  # torch: imported once there is work

        status = _exit_status(exc)
        if args.debug or status is None:
            raise
        message = " ".join(str(exc).split()) or type(exc).__name__
        if isinstance(exc, WeightsUnavailableError):
            message += f" On the command line: {exc.command_line_hint}."
        print(f"{PROG}: error: {message}", file=sys.stderr)
        return status
