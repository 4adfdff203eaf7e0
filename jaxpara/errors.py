"""User-facing errors and the one way the command-line tools report them.

A `UserError` is a problem with what the user gave (a corpus, an audio file,
a workdir, a config value), not with jaxpara: the CLIs print it as one line
`error: ...` naming the file or key and exit with status 2, without a Python
traceback (set `JAXPARA_VERBOSE=1`, or pass `--verbose`, to see it). Any other
exception is a programming error and keeps its traceback.

The classes also derive from the builtin a caller would expect (ValueError,
FileNotFoundError), so `except ValueError` keeps working.
"""

from __future__ import annotations

import os
import sys

EXIT_USER_ERROR = 2
VERBOSE_ENV = "JAXPARA_VERBOSE"


class UserError(Exception):
    """Bad input from the user; the message names the file or config key."""


class ConfigError(UserError, ValueError):
    """A config value that cannot be used (the message names the key)."""


class WorkdirError(UserError, FileNotFoundError):
    """A workdir (or a file in it) that cannot be used."""


class ArgumentError(UserError, ValueError):
    """A command-line argument that cannot be used (--fold, --checkpoint, ...)."""


def verbose(argv=None) -> bool:
    """Tracebacks wanted: `--verbose` on the command line or JAXPARA_VERBOSE=1."""
    argv = sys.argv if argv is None else argv
    return "--verbose" in argv or os.environ.get(VERBOSE_ENV, "") not in ("", "0")


def run_cli(main, argv=None) -> int:
    """Runs `main(argv)`; a UserError becomes `error: ...` and status 2.

    Returns:
      main's exit status (0 when it returns None).
    """
    try:
        return main(argv) or 0
    except UserError as err:
        if verbose(argv):
            raise
        message = " ".join(str(err).split("\n"))
        print(f"error: {message}", file=sys.stderr)
        return EXIT_USER_ERROR
