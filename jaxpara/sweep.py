"""Sweeps: one config over a grid of settings -> one results table.

    python -m jaxpara.sweep --config=configs/icbhi_resnet18.py --workdir=DIR \
        --grid='model.attention=none,se,spatial,se_spatial,component'
    python -m jaxpara.sweep --config=configs/icbhi_resnet18.py --workdir=DIR \
        --grid=paper                     # the paper's own ablation table

Each `--grid=KEY=V1,V2,...` is an axis; several axes make their product. KEY
is any config key (values parsed as that key's type) or `variant`, the
argument of the config file's `get_config(variant)`. `--grid=paper` (or
`paper:NAME`) takes the axes, table columns and the paper's reference figures
of a sweep the config file names in its `PAPER_SWEEPS` (the first one for
plain `paper`): {"grid": [axes], "columns": a name in `COLUMN_SETS`,
"source": where the figures come from, "reference": the figures as a text
table, `reference_table`}. `--config.x.y=...` overrides apply to every cell.

Every cell trains in its own workdir `DIR/cells/<cell>/` (`jaxpara.rundir`):
a finished cell (results.json) is not retrained, an interrupted one resumes
from its checkpoint, and a cell whose stored config differs from the one the
sweep would train now is refused. Synthetic corpora and the feature cache
are shared by the cells (`DIR/data`, `DIR/cache`; both are keyed by hashes of
what they depend on). Then `DIR/table.md` and `DIR/table.csv` get one row per
cell: the columns of the card (the paper's own figure beside each value where
the config knows it) and the paired significance of the cell's test
predictions against the first cell's (`jaxpara.compare`: one-tailed z-test
and exact McNemar p-values).
"""

from __future__ import annotations

import ast
import copy
import csv
import dataclasses
import importlib.util
import itertools
import json
import os
import re

from absl import app, flags, logging
from ml_collections import config_flags
from ml_collections.config_flags import config_path

from jaxpara import cli

FLAGS = flags.FLAGS
config_flags.DEFINE_config_file(
    "config", None, "Config file (configs/<x>.py[:variant]).", lock_config=True
)
flags.DEFINE_string("workdir", None, "Directory of the sweep (cells, table).")
flags.DEFINE_multi_string(
    "grid", [], "Axis KEY=V1,V2,... (repeat for a product), or paper[:NAME]."
)
flags.DEFINE_bool("verbose", False, "Show tracebacks of input errors.")

# The columns a card's table reports (a paper sweep names one set): header,
# path in results.json, and optionally the path of a +- std, or a `kind` for
# an interval [lo, hi] (`ci`: shown as such; `width`: hi - lo).
COLUMN_SETS = {
    "wa_uar": (
        {"header": "test WA", "path": "splits.test.wa"},
        {"header": "test UAR", "path": "splits.test.uar"},
    ),
    "uar": ({"header": "test UAR", "path": "splits.test.uar"},),
    "binary": (  # Card C1.
        {"header": "test Acc", "path": "splits.test.wa"},
        {"header": "test UAR", "path": "splits.test.uar"},
        {"header": "test SE", "path": "splits.test.sensitivity"},
        {"header": "test SP", "path": "splits.test.specificity"},
        {"header": "test UAR 95% CI", "path": "splits.test.uar_ci95", "kind": "ci"},
        {"header": "CI width", "path": "splits.test.uar_ci95", "kind": "width"},
    ),
    "icbhi": (  # Card C2.
        {"header": "validation AS", "path": "splits.validation.icbhi_score"},
        {"header": "test SE", "path": "splits.test.sensitivity"},
        {"header": "test SP", "path": "splits.test.specificity"},
        {"header": "test AS", "path": "splits.test.icbhi_score"},
    ),
    "folds": (  # Card C5: seeds averaged per fold, mean +- ddof-0 std.
        {
            "header": "test UAR over folds",
            "path": "summary.test.uar_mean",
            "std": "summary.test.uar_std",
        },
        {"header": "test WA over folds", "path": "summary.test.wa_mean"},
    ),
}


def reference_table(text: str, num_columns: int) -> dict[str, list]:
    """A paper's figures written as a text table, one row per line: the cell
    label, then one value per column (`-`: not given; a number, or text such
    as `59.43+-11.57`).

    Raises:
      ConfigError: a row with the wrong number of values.
    """
    from jaxpara.errors import ConfigError

    rows = {}
    for line in text.strip().splitlines():
        label, *values = line.split()
        if len(values) != num_columns:
            raise ConfigError(
                f"paper reference row {line.strip()!r}: {len(values)} values for "
                f"{num_columns} columns"
            )
        rows[label] = [None if v == "-" else _number(v) for v in values]
    return rows


def _number(text: str):
    try:
        return float(text)
    except ValueError:
        return text.replace("+-", " +- ")


@dataclasses.dataclass(frozen=True)
class Cell:
    """One grid point: its label (the values, comma-joined), directory name,
    settings [(key, value)] and config."""

    label: str
    name: str
    settings: tuple
    config: object


def load_module(path: str):
    """The config file as a module (its get_config, PAPER_SWEEPS)."""
    spec = importlib.util.spec_from_file_location("jaxpara_sweep_config", path)
    if spec is None or not os.path.isfile(path):
        from jaxpara.errors import ConfigError

        raise ConfigError(f"--config={path}: no such config file")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def paper_sweep(module, name: str = "") -> dict:
    """The config's named paper sweep (`PAPER_SWEEPS[name]`, default the first)."""
    from jaxpara.errors import ConfigError

    sweeps = getattr(module, "PAPER_SWEEPS", None)
    if not sweeps:
        raise ConfigError(f"{module.__file__} names no paper sweep (PAPER_SWEEPS)")
    name = name or next(iter(sweeps))
    if name not in sweeps:
        raise ConfigError(f"--grid=paper:{name}: expected one of {sorted(sweeps)}")
    sweep = sweeps[name]
    columns = COLUMN_SETS[sweep["columns"]]
    return {
        "name": name,
        "grid": list(sweep["grid"]),
        "columns": columns,
        "source": sweep["source"],
        "reference": reference_table(sweep["reference"], len(columns)),
    }


def parse_axes(grid: list[str]) -> list[tuple[str, list[str]]]:
    """[(key, [value text, ...])] of `--grid` axes."""
    from jaxpara.errors import ConfigError

    axes = []
    for axis in grid:
        key, sep, values = axis.partition("=")
        items = [v.strip() for v in values.split(",")] if sep else []
        if not key.strip() or not items or not all(items):
            raise ConfigError(f"--grid={axis!r}: expected KEY=V1,V2,...")
        axes.append((key.strip(), items))
    keys = [k for k, _ in axes]
    if len(set(keys)) != len(keys):
        raise ConfigError(f"--grid: an axis is given twice in {keys}")
    return axes


def _typed(current, text: str, key: str):
    """`text` parsed as the type of the config value `current`."""
    from jaxpara.errors import ConfigError

    try:
        if isinstance(current, bool):
            if text.lower() not in ("true", "false", "1", "0"):
                raise ValueError("expected true or false")
            return text.lower() in ("true", "1")
        if isinstance(current, (int, float, tuple, list)):
            value = type(current)(ast.literal_eval(text))
            return value
        return text
    except (ValueError, SyntaxError, TypeError) as err:
        raise ConfigError(f"--grid {key}={text!r}: {err}") from None


def build_cells(module, base, overrides: dict, axes) -> list[Cell]:
    """The grid's cells, in axis order (the first axis varies slowest)."""
    from jaxpara.errors import ConfigError

    cells = []
    for values in itertools.product(*(items for _, items in axes)):
        settings = tuple(zip([k for k, _ in axes], values))
        variant = dict(settings).get("variant")
        if variant is None:
            cfg = copy.deepcopy(base)
        else:
            try:
                cfg = module.get_config(variant)
            except ValueError as err:
                raise ConfigError(f"--grid variant={variant}: {err}") from None
            for path, value in overrides.items():
                config_path.set_value(path, cfg, value)
        for key, text in settings:
            if key == "variant":
                continue
            try:
                current = config_path.get_value(key, cfg)
            except (KeyError, AttributeError):
                raise ConfigError(f"--grid: no such config key {key!r}") from None
            config_path.set_value(key, cfg, _typed(current, text, key))
        label = ",".join(values)
        name = "__".join(f"{k.split('.')[-1]}-{v}" for k, v in settings)
        cells.append(
            Cell(label, re.sub(r"[^A-Za-z0-9_.,=-]", "_", name), settings, cfg)
        )
    return cells


def run_cell(cell: Cell, workdir: str) -> dict:
    """Trains (or resumes, or reuses) one cell; returns its results.json."""
    from jaxpara import rundir, train
    from jaxpara.errors import WorkdirError

    path = rundir.cell_dir(workdir, cell.name)
    os.makedirs(path, exist_ok=True)
    for shared in (rundir.DATA, rundir.CACHE):
        os.makedirs(os.path.join(workdir, shared), exist_ok=True)
        link = os.path.join(path, shared)
        if not os.path.lexists(link):
            os.symlink(os.path.join("..", "..", shared), link)
    stored = os.path.join(path, rundir.CONFIG)
    if os.path.isfile(stored):
        with open(stored) as f:
            if json.load(f) != json.loads(cell.config.to_json_best_effort()):
                raise WorkdirError(
                    f"{path} was trained with another config than cell "
                    f"{cell.label!r} now has; use a new --workdir"
                )
    if os.path.isfile(os.path.join(path, rundir.RESULTS)):
        logging.info("cell %s: finished, not retrained (%s)", cell.label, path)
        return rundir.read_results(path)
    logging.info("cell %s: training in %s", cell.label, path)
    return train.train_and_evaluate(cell.config, path)


def _get(results: dict, path: str):
    value = results
    for part in path.split("."):
        if not isinstance(value, dict) or part not in value:
            return None
        value = value[part]
    return value


def _pct(x) -> str:
    return "–" if x is None else f"{100 * x:.2f}"


def _value(results: dict, col: dict):
    """A column's value: the number at `path`, or of an interval [lo, hi]
    there its width (`kind: width`) or the interval itself (`kind: ci`)."""
    value = _get(results, col["path"])
    if col.get("kind") == "width":
        return None if value is None else value[1] - value[0]
    return value


def _text(value, col: dict) -> str:
    if col.get("kind") == "ci":
        return "–" if value is None else f"[{_pct(value[0])}, {_pct(value[1])}]"
    return _pct(value)


def table_rows(cells, results: list[dict], columns, reference: dict, workdir: str):
    """One dict per cell, then one per branch of its model (label
    `<cell>/<branch>`, "branch": True): {"cell", "params", <header>,
    "paper <header>", "z p", "McNemar p"} (fractions; None where undefined)."""
    from jaxpara import compare, rundir
    from jaxpara.errors import UserError

    systems = []
    for cell in cells:
        try:
            systems.append(
                compare.System.from_workdir(rundir.cell_dir(workdir, cell.name))
            )
        except UserError as err:
            systems.append(err)
    rows = []
    for i, (cell, res) in enumerate(zip(cells, results)):
        row = _row(cell.label, res, columns, reference)
        row["params"] = res["model"]["num_params"]
        if i and not isinstance(systems[0], Exception):
            try:
                if isinstance(systems[i], Exception):
                    raise systems[i]
                out = compare.compare([systems[0], systems[i]])["systems"][1]
                row["z p"] = out["z_test"]["p_value"]
                row["McNemar p"] = out["mcnemar"]["p_value"]
            except UserError as err:
                row["significance"] = str(err)
        rows.append(row)
        # A model's branches, scored on their own posteriors in the same run
        # (card C1: one fusion run gives the SACRNN, ACRNN and fusion rows).
        for branch, branch_res in res.get("branches", {}).items():
            label = f"{cell.label}/{branch}"
            rows.append({**_row(label, branch_res, columns, reference), "branch": True})
    return rows


def _row(label: str, res: dict, columns, reference: dict) -> dict:
    """{"cell", <header>[, <header> std], "paper <header>", "z p": None,
    "McNemar p": None} of one results dict."""
    row = {"cell": label, "params": None}
    paper = reference.get(label, [None] * len(columns))
    for col, ref in zip(columns, paper):
        row[col["header"]] = _value(res, col)
        if "std" in col:
            row[col["header"] + " std"] = _get(res, col["std"])
        row["paper " + col["header"]] = ref
    row["z p"] = row["McNemar p"] = None
    return row


def markdown(title: str, rows: list[dict], columns, source: str) -> str:
    """table.md: ours (paper's figure in brackets) per column, p-values."""
    headers = ["cell", "params", *(c["header"] for c in columns)]
    headers += ["vs first: z p", "McNemar p"]
    lines = [f"# {title}", ""]
    if source:
        lines += [f"In brackets: {source}.", ""]
    lines += ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    for i, row in enumerate(rows):
        params = "–" if row["params"] is None else f"{row['params']:,}"
        cells = [row["cell"], params]
        for col in columns:
            text = _text(row[col["header"]], col)
            if "std" in col:
                text += f" +- {_pct(row[col['header'] + ' std'])}"
            ref = row["paper " + col["header"]]
            if ref is not None:
                text += f" ({ref})"
            cells.append(text)
        if row.get("branch"):
            cells += ["(same run)", "(same run)"]
        elif i == 0:
            cells += ["reference", "reference"]
        elif row.get("significance"):
            cells += ["n/a", "n/a"]
        else:
            cells += [f"{row['z p']:.3g}", f"{row['McNemar p']:.3g}"]
        lines.append("| " + " | ".join(cells) + " |")
    notes = [
        f"- {r['cell']}: {r['significance']}" for r in rows if r.get("significance")
    ]
    if notes:
        lines += ["", "Not compared (different test utterances):", *notes]
    return "\n".join(lines) + "\n"


def run_sweep(config_file: str, base, overrides: dict, grid: list[str], workdir: str):
    """The whole sweep (module docstring); returns the table rows."""
    from jaxpara import rundir

    module = load_module(config_file)
    sweep = {}
    if len(grid) == 1 and (grid[0] == "paper" or grid[0].startswith("paper:")):
        sweep = paper_sweep(module, grid[0].partition(":")[2])
        grid = list(sweep["grid"])
    axes = parse_axes(grid)
    cells = build_cells(module, base, overrides, axes)
    logging.info("sweep of %d cells: %s", len(cells), [c.label for c in cells])
    results = [run_cell(c, workdir) for c in cells]
    columns = list(sweep.get("columns", COLUMN_SETS["wa_uar"]))
    if not sweep and all("summary" in r for r in results):
        columns += COLUMN_SETS["folds"]
    rows = table_rows(cells, results, columns, sweep.get("reference", {}), workdir)
    title = f"Sweep of {config_file} over {' x '.join(k for k, _ in axes)}"
    if sweep:
        title += f" (paper sweep {sweep['name']!r})"
    with open(os.path.join(workdir, rundir.SWEEP_TABLE_MD), "w") as f:
        f.write(markdown(title, rows, columns, sweep.get("source", "")))
    with open(os.path.join(workdir, rundir.SWEEP_TABLE_CSV), "w", newline="") as f:
        writer = csv.DictWriter(f, list(dict.fromkeys(k for r in rows for k in r)))
        writer.writeheader()
        writer.writerows(rows)
    return rows


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
    from jaxpara import errors, rundir

    logging.get_absl_handler().setFormatter(cli.ConsoleFormatter())
    if not FLAGS.grid:
        raise app.UsageError("give at least one --grid axis (or --grid=paper)")
    os.makedirs(FLAGS.workdir, exist_ok=True)
    try:
        run_sweep(
            config_flags.get_config_filename(FLAGS["config"]),
            FLAGS.config,
            dict(config_flags.get_override_values(FLAGS["config"])),
            FLAGS.grid,
            FLAGS.workdir,
        )
    except errors.UserError as err:
        if FLAGS.verbose or errors.verbose():
            raise
        cli.user_error(err)
    print(os.path.join(FLAGS.workdir, rundir.SWEEP_TABLE_MD))


if __name__ == "__main__":
    flags.mark_flags_as_required(["config", "workdir"])
    app.run(main, flags_parser=cli.parse_flags)
