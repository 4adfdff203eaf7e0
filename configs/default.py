"""Every configuration key jaxpara knows: the schema `jaxpara.config_schema`.

The user-facing entry point of the paper configs (`from configs import
default; c = default.get_config()`) and of `--config=configs/default.py`. The
keys, each with its one-line comment, live in `jaxpara/config_schema.py`, inside
the package, so that an installed wheel can rebuild a trained run's config.
"""

from jaxpara.config_schema import check_variant, get_config

__all__ = ["check_variant", "get_config"]
