"""Paired significance tests of trained runs on the same test utterances.

    python -m jaxpara.compare DIR_A DIR_B [DIR_C ...] [--split=test]
        [--seed_index=0] [--draws=1000] [--output=compare.json]

Each later run is compared with the first (A) on the utterances both
predicted: the one-tailed two-proportion z-test of seed 002 (H1: accuracy of
the later run > accuracy of A), an exact McNemar test (two-sided) and a
paired bootstrap 95% CI of UAR(run) - UAR(A) (the same resampled utterances
for both). Protocol runs are compared fold by fold, utterance by utterance:
an item is (fold, utterance id) of the run's `--seed_index`-th seed (the
runs' predictions.csv). Runs whose item sets, class names or true labels
differ are refused, naming the difference: a test is only meaningful on the
same utterances.

Prints a markdown table; `--output` also writes the numbers as JSON.
"""

from __future__ import annotations

import dataclasses
import json
import sys

import numpy as np

from jaxpara import metrics, rundir
from jaxpara.errors import ArgumentError, WorkdirError


@dataclasses.dataclass(frozen=True)
class System:
    """One run's predictions on one split, as aligned arrays.

    Attributes:
      name: the workdir.
      labels: class names (index k is `labels[k]`).
      items: (fold, utterance id) per item, sorted.
      truth: [N] true class indices.
      predictions: [N] predicted class indices.
    """

    name: str
    labels: tuple
    items: tuple
    truth: np.ndarray
    predictions: np.ndarray

    @classmethod
    def from_workdir(
        cls, workdir: str, *, split: str = "test", seed_index: int = 0
    ) -> System:
        """Reads a finished run's predictions (`rundir`).

        Raises:
          WorkdirError: unfinished run. ArgumentError: no such split / seed.
        """
        labels = tuple(rundir.read_results(workdir)["corpus"]["labels"])
        rows = [r for r in rundir.read_predictions(workdir) if r["split"] == split]
        if not rows:
            raise ArgumentError(f"{workdir}: no predictions of split {split!r}")
        seeds = sorted({int(r["seed"]) for r in rows})
        if not 0 <= seed_index < len(seeds):
            raise ArgumentError(
                f"{workdir}: --seed_index={seed_index}, but the run has seeds {seeds}"
            )
        rows = [r for r in rows if int(r["seed"]) == seeds[seed_index]]
        rows.sort(key=lambda r: (r["fold"], r["utterance_id"]))
        index = {name: k for k, name in enumerate(labels)}
        unknown = {r[c] for r in rows for c in ("label", "prediction")} - set(index)
        if unknown:
            raise WorkdirError(
                f"{workdir}: predictions.csv holds classes {sorted(unknown)} that "
                f"results.json does not list ({list(labels)})"
            )
        return cls(
            name=workdir,
            labels=labels,
            items=tuple((r["fold"], r["utterance_id"]) for r in rows),
            truth=np.array([index[r["label"]] for r in rows], np.int64),
            predictions=np.array([index[r["prediction"]] for r in rows], np.int64),
        )


def check_paired(a: System, b: System) -> None:
    """Raises ArgumentError, naming the difference, unless `b` scored the same
    items as `a`, with the same class names and true labels."""
    if a.labels != b.labels:
        raise ArgumentError(
            f"{b.name}: classes {list(b.labels)} differ from {a.name}'s {list(a.labels)}"
        )
    if a.items != b.items:
        only_a = sorted(set(a.items) - set(b.items))
        only_b = sorted(set(b.items) - set(a.items))
        raise ArgumentError(
            f"{b.name} and {a.name} predicted different utterances: {len(only_a)} only "
            f"in {a.name} (e.g. {only_a[:3]}), {len(only_b)} only in {b.name} "
            f"(e.g. {only_b[:3]})"
        )
    wrong = np.flatnonzero(a.truth != b.truth)
    if wrong.size:
        raise ArgumentError(
            f"{b.name}: {wrong.size} utterances carry other true labels than in "
            f"{a.name} (e.g. {a.items[wrong[0]]})"
        )


def compare(systems: list[System], *, draws: int = 1000, seed: int = 0) -> dict:
    """Scores every system and tests each later one against the first.

    Returns:
      {"reference", "n", "systems": [{"name", "wa", "uar", and for all but the
      first "z_test" {"z", "p_value"}, "mcnemar" {"b", "c", "p_value"},
      "uar_difference" {"difference", "ci95", "draws", "seed"}}]}.
    """
    if len(systems) < 2:
        raise ArgumentError("compare needs at least two runs")
    ref = systems[0]
    for other in systems[1:]:
        check_paired(ref, other)
    k, n = len(ref.labels), len(ref.items)
    out = []
    for s in systems:
        cm = metrics.confusion_matrix(s.truth, s.predictions, k)
        entry = {"name": s.name, "wa": metrics.wa(cm), "uar": metrics.uar(cm)}
        if s is not ref:
            correct_ref = ref.predictions == ref.truth
            correct = s.predictions == s.truth
            z, p = metrics.two_proportion_z_test(
                int(correct.sum()), n, int(correct_ref.sum()), n
            )
            entry["z_test"] = {"z": z, "p_value": p}
            entry["mcnemar"] = metrics.mcnemar_exact(correct_ref, correct)
            entry["uar_difference"] = metrics.paired_bootstrap_uar_difference(
                ref.truth, ref.predictions, s.predictions, k, draws=draws, seed=seed
            )
        out.append(entry)
    return {"reference": ref.name, "n": n, "systems": out}


def markdown(result: dict) -> str:
    """The comparison as a markdown table (percentages, p-values)."""
    lines = [
        f"Paired on {result['n']} utterances; tests against {result['reference']}.",
        "",
        "| run | WA % | UAR % | z (one-tailed p) | McNemar b / c (p) "
        "| UAR difference % [95% CI] |",
        "|---|---|---|---|---|---|",
    ]
    for s in result["systems"]:
        cells = [s["name"], f"{100 * s['wa']:.2f}", f"{100 * s['uar']:.2f}"]
        if "z_test" in s:
            z, m, d = s["z_test"], s["mcnemar"], s["uar_difference"]
            lo, hi = d["ci95"]
            cells += [
                f"{z['z']:.2f} ({z['p_value']:.3g})",
                f"{m['b']} / {m['c']} ({m['p_value']:.3g})",
                f"{100 * d['difference']:+.2f} [{100 * lo:+.2f}, {100 * hi:+.2f}]",
            ]
        else:
            cells += ["reference"] * 3
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


# --------------------------------------------------------------------- CLI
def main(argv=None) -> int:
    """The CLI (module docstring); exit status 2 on an input error."""
    from jaxpara import errors

    return errors.run_cli(_compare, argv)


def _compare(argv) -> int:
    import argparse

    parser = argparse.ArgumentParser(
        prog="python -m jaxpara.compare", description=__doc__.split("\n")[0]
    )
    parser.add_argument("workdirs", nargs="+", metavar="DIR", help="Trained runs.")
    parser.add_argument("--split", default="test", help="The split compared.")
    parser.add_argument("--seed_index", type=int, default=0, help="Which seed's run.")
    parser.add_argument("--draws", type=int, default=1000, help="Bootstrap draws.")
    parser.add_argument("--output", default="", help="Also write the JSON here.")
    parser.add_argument("--verbose", action="store_true", help="Show tracebacks.")
    args = parser.parse_args(argv)
    systems = [
        System.from_workdir(d, split=args.split, seed_index=args.seed_index)
        for d in args.workdirs
    ]
    result = compare(systems, draws=args.draws)
    print(markdown(result), end="")
    if args.output:
        with open(args.output, "w") as f:
            json.dump(result, f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
