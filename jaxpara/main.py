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

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from absl import app, flags, logging  # noqa: E402
from ml_collections import config_flags  # noqa: E402

from jaxpara import cli  # noqa: E402

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


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
    logging.get_absl_handler().setFormatter(cli.ConsoleFormatter())
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
        cli.user_error(err)
    except train.NonFiniteLossError as err:
        logging.error("%s", err)
        sys.exit(3)
    except checkpointing.PreemptedError as err:
        logging.warning("%s", err)
        sys.exit(143)  # 128 + SIGTERM, what schedulers expect of a preempted job.


if __name__ == "__main__":
    app.run(main, flags_parser=cli.parse_flags)
