"""Every configuration key jaxpara knows: the schema `jaxpara.config_schema`.

The user-facing entry point of the paper configs (`from configs import
default; c = default.get_config()`) and of `--config=configs/default.py`. The
keys, each with its one-line comment, live in `jaxpara/config_schema.py`, inside
the package, so that an installed wheel can rebuild a trained run's config.

Variant modifiers: a paper config's argument is `variant[,option...]`
(`parse_variant`); every paper config knows the option `aug`, which turns on
the card's augmentation preset (`augment`): `--config=configs/x.py:fusion,aug`.
`+` separates options too (`fusion+aug`), so that a sweep axis can list them:
`--grid=variant=fusion,fusion+aug`.
"""

import re

from jaxpara.config_schema import check_variant, get_config

__all__ = ["AUGMENT_PRESETS", "augment", "check_variant", "get_config", "parse_variant"]

# `,aug`: what suits each kind of card (everything else stays off). Mask
# widths scale with the config: each time mask up to 10% of the segment
# length, each frequency mask up to 1/8 of the bins.
AUGMENT_PRESETS = {
    # Emotion (C3, C4, C5): SpecAugment masks + mixup (alpha 0.2).
    "emotion": {"time_masks": 2, "freq_masks": 2, "mixup_alpha": 0.2},
    # Cough / lung sounds (C1, C2): SpecAugment masks + feature noise, 10-30 dB.
    "health": {
        "time_masks": 2,
        "freq_masks": 2,
        "noise": True,
        "noise_snr_min": 10.0,
        "noise_snr_max": 30.0,
    },
}
_PRESET_OF_CORPUS = {
    "iemocap": "emotion",
    "fau_aibo": "emotion",
    "emodb": "emotion",
    "manifest": "emotion",
    "ccs": "health",
    "icbhi": "health",
}


def parse_variant(config_file: str, arg: str, variants, options=()):
    """Splits a paper config's `variant[,option...]` (or `variant[+option...]`)
    argument and checks both.

    Args:
      config_file: the config's path, for the error message.
      arg: what follows the ':' of `--config=configs/x.py:...`.
      variants: the config's variant names.
      options: the config's own options besides 'aug'.

    Returns:
      (variant, frozenset of options).

    Raises:
      ValueError: an unknown variant or option, naming the file.
    """
    variant, *given = re.split("[,+]", arg)
    check_variant(config_file, variant, variants)
    known = ("aug", *options)
    for option in given:
        if option not in known:
            raise ValueError(
                f"{config_file}:{arg}: unknown option {option!r} after "
                f"{variant!r}; expected any of {[f',{o}' for o in known]}"
            )
    return variant, frozenset(given)


def augment(c, preset: str = "") -> None:
    """The `,aug` modifier: sets `c.augment` to a preset of `AUGMENT_PRESETS`
    ('' = the one of `c.data.corpus`), mask widths scaled to `c` (module
    constant's comment)."""
    from jaxpara.audio import features

    name = preset or _PRESET_OF_CORPUS[c.data.corpus]
    for key, value in AUGMENT_PRESETS[name].items():
        setattr(c.augment, key, value)
    spec = features.FeatureSpec.from_config(c.data.features, c.data.sample_rate)
    c.augment.time_mask_frames = max(1, c.data.segment.length // 10)
    c.augment.freq_mask_bins = max(1, spec.num_bins // 8)
