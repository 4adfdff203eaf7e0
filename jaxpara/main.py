"""Entry point: `python -m jaxpara.main --config=configs/<x>.py[:arg] --workdir=DIR`.

Only parses flags and calls `jaxpara.train.train_and_evaluate` (STYLE 1), or,
with `--mode=export_features`, `jaxpara.export.export_features` (card C3).
Config overrides: `--config.train.num_epochs=3`; the config is locked, so an
unknown key fails here, before anything is compiled.

Exit status: 0 done; 2 bad input (a config key or value, the corpus, an audio
file under data.on_error=raise, the workdir), printed as one line `error:
...` naming it, without a traceback (`--verbose` or JAXPARA_VERBOSE=1 shows
it); 3 non-finite loss; 143 preempted (SIGTERM, checkpointed).
"""

import os
import sys
import time
from logging import WARNING

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from absl import app, flags, logging  # noqa: E402
from ml_collections import config_flags  # noqa: E402

FLAGS = flags.FLAGS
config_flags.DEFINE_config_file(
    "config", None, "Config file (configs/<x>.py[:variant]).", lock_config=True
)
flags.DEFINE_string("workdir", None, "Directory for checkpoints, logs and results.")
flags.DEFINE_enum(
    "mode",
    "train",
    ["train", "export_features"],
    "train: train and evaluate (resumes). export_features: deep-spectrum vectors "
    "of a trained workdir + linear SVM (jaxpara.export, card C3).",
)
flags.DEFINE_string(
    "coordinator_address",
    "",
    "Multi-process runs: host:port of process 0 (else JAX_COORDINATOR_ADDRESS, "
    "else SLURM / TPU pod / MPI auto-detection; see launch/).",
)
flags.DEFINE_integer("num_processes", 0, "Multi-process runs: number of processes.")
flags.DEFINE_integer("process_id", -1, "Multi-process runs: this process's index.")
flags.DEFINE_bool("verbose", False, "Show tracebacks of input errors.")
flags.mark_flags_as_required(["config", "workdir"])


class _ConsoleFormatter(logging.PythonFormatter):
    """`HH:MM:SS message` (warnings and errors name their level), instead of
    absl's `I1202 19:00:00.123456 140446 train.py:376]` prefix."""

    def format(self, record) -> str:
        stamp = time.strftime("%H:%M:%S", time.localtime(record.created))
        level = f"{record.levelname}: " if record.levelno >= WARNING else ""
        return f"{stamp} {level}{record.getMessage()}"


def _user_error(err) -> None:
    """One line on stderr and exit status 2 (errors module docstring)."""
    message = " ".join(str(err).split("\n"))
    print(f"error: {message}", file=sys.stderr)
    sys.exit(2)


def _unknown_key(err, argv) -> str:
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


def _parse_flags(argv):
    """absl's parser, with a bad flag or config key as a one-line error."""
    try:
        return FLAGS(argv)
    except flags.Error as err:
        if "--verbose" in argv:
            raise
        _user_error(err)
    except (AttributeError, KeyError, TypeError) as err:  # Unknown --config.* key.
        if "--verbose" in argv or not any(a.startswith("--config.") for a in argv):
            raise
        _user_error(_unknown_key(err, argv))


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
    logging.get_absl_handler().setFormatter(_ConsoleFormatter())
    # jax after flag parsing.
    from jaxpara import checkpointing, errors, sharding, train

    sharding.initialize_distributed(
        FLAGS.coordinator_address, FLAGS.num_processes, FLAGS.process_id
    )

    logging.info("Config:\n%s", FLAGS.config)
    try:
        if FLAGS.mode == "export_features":
            from jaxpara import export

            export.export_features(FLAGS.config, FLAGS.workdir)
        else:
            train.train_and_evaluate(FLAGS.config, FLAGS.workdir)
    except errors.UserError as err:
        if FLAGS.verbose or errors.verbose():
            raise
        _user_error(err)
    except train.NonFiniteLossError as err:
        logging.error("%s", err)
        sys.exit(3)
    except checkpointing.PreemptedError as err:
        logging.warning("%s", err)
        sys.exit(143)  # 128 + SIGTERM, what schedulers expect of a preempted job.


if __name__ == "__main__":
    app.run(main, flags_parser=_parse_flags)
