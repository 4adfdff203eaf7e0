"""Figures: matplotlib on the Agg backend (PNG files, no display needed)."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402


def save(fig, path: str) -> str:
    """Writes `fig` as a PNG at `path`, closes it and returns the path."""
    fig.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(fig)
    return path
