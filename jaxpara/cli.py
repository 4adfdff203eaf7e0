"""Command-line plumbing shared by `jaxpara.main` and `jaxpara.sweep` (absl).

`parse_flags` is absl's flag parser with a bad flag or an unknown
`--config.*` key turned into one `error: ...` line and exit status 2
(`jaxpara.errors`); `ConsoleFormatter` gives progress lines a short
`HH:MM:SS` prefix instead of absl's.
"""

from __future__ import annotations

import sys
import time
from logging import WARNING

from absl import flags, logging

from jaxpara import errors

FLAGS = flags.FLAGS


class ConsoleFormatter(logging.PythonFormatter):
    """`HH:MM:SS message` (warnings and errors name their level), instead of
    absl's `I1202 19:00:00.123456 140446 train.py:376]` prefix."""

    def format(self, record) -> str:
        stamp = time.strftime("%H:%M:%S", time.localtime(record.created))
        level = f"{record.levelname}: " if record.levelno >= WARNING else ""
        return f"{stamp} {level}{record.getMessage()}"


def user_error(err) -> None:
    """One line on stderr and exit status 2 (errors module docstring)."""
    message = " ".join(str(err).split("\n"))
    print(f"error: {message}", file=sys.stderr)
    sys.exit(errors.EXIT_USER_ERROR)


def unknown_key(err, argv) -> str:
    """The one-line message of an override naming a key the config lacks.

    ml_collections raises AttributeError/KeyError whose text is the missing
    key in quotes, often followed by a "Did you mean" line.
    """
    while err.args and isinstance(err.args[0], Exception):
        err = err.args[0]
    if isinstance(err, TypeError):  # A key below a leaf: train.optimizer.x.
        overrides = [a for a in argv if a.startswith("--config.")]
        return f"{' '.join(overrides)}: not a config key path ({err})"
    text = str(err.args[0] if err.args else err)
    missing, _, hint = text.partition("\n")
    missing = missing.strip("'\"")
    overrides = [a.split("=", 1)[0] for a in argv if a.startswith("--config.")]
    named = [a for a in overrides if missing in a[len("--config.") :].split(".")]
    where = named[0] if named else "a --config.* override"
    hint = hint.replace('"', "").strip()
    return f"{where}: no such config key {missing!r}" + (f" ({hint})" if hint else "")


def parse_flags(argv):
    """absl's parser, with a bad flag or config key as a one-line error."""
    try:
        return FLAGS(argv)
    except flags.Error as err:
        if "--verbose" in argv:
            raise
        user_error(err)
    except (AttributeError, KeyError, TypeError) as err:  # Unknown --config.* key.
        if "--verbose" in argv or not any(a.startswith("--config.") for a in argv):
            raise
        user_error(unknown_key(err, argv))
