"""Entry point: `python -m jaxpara.main --config=configs/<x>.py[:arg] --workdir=DIR`.

Only parses flags and calls `jaxpara.train.train_and_evaluate` (STYLE 1).
Config overrides: `--config.train.num_epochs=3`; the config is locked, so an
unknown key fails here, before anything is compiled.
"""

import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from absl import app, flags, logging  # noqa: E402
from ml_collections import config_flags  # noqa: E402

FLAGS = flags.FLAGS
config_flags.DEFINE_config_file(
    "config", None, "Config file (configs/<x>.py[:variant]).", lock_config=True
)
flags.DEFINE_string("workdir", None, "Directory for checkpoints, logs and results.")
flags.mark_flags_as_required(["config", "workdir"])


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
    from jaxpara import train  # Imports jax only after flags are parsed.

    logging.info("Config:\n%s", FLAGS.config)
    try:
        train.train_and_evaluate(FLAGS.config, FLAGS.workdir)
    except train.NonFiniteLossError as err:
        logging.error("%s", err)
        sys.exit(3)


if __name__ == "__main__":
    app.run(main)
