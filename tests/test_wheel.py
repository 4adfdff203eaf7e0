"""The installed package: a wheel of this tree, in a fresh venv, predicts with
a workdir trained by the editable install (issue 13 item 7).

The wheel is built (`pip wheel --no-deps --no-build-isolation --no-index`, no
network) from a copy of the source tree without its build outputs: setuptools
never cleans `build/lib`, so building in place would ship modules deleted since
the last build (and write build/ and *.egg-info into the checkout while
others use it). The venv has `--system-site-packages` (jax, TensorFlow, ...
come from the system) and no pip of its own (`--without-pip`: ensurepip costs
~8 s; the system's pip, run by the venv's python, installs into the venv).
Every command runs in `tmp_path`, without PYTHONPATH, so the source tree is
not on the path; the system site-packages still has the editable finder of
`pip install -e .`, which the venv's copy must shadow.
"""

from __future__ import annotations

import csv
import json
import os
import shutil
import subprocess
import sys
import zipfile

import numpy as np
import pytest
import soundfile as sf

from jaxpara import predict
from jaxpara.data import corpora
from tests import demo_run
from tests.subproc import REPO, subprocess_env

pytest.importorskip("pip", reason="pip is needed to build and install the wheel")
pytest.importorskip("venv", reason="venv is needed for a fresh environment")

# Root entries of the checkout that are build outputs or caches (.gitignore).
_NOT_SOURCE = {
    ".git",
    "build",
    "dist",
    "workdirs",
    ".whl",
    ".pytest_cache",
    ".ruff_cache",
}
_TIMEOUT = 600


def _ignore(root: str):
    def ignore(folder, names):
        at_root = os.path.samefile(folder, root)
        return {
            n
            for n in names
            if n == "__pycache__"
            or n.endswith(".egg-info")
            or (at_root and n in _NOT_SOURCE)
        }

    return ignore


def _env() -> dict[str, str]:
    """One CPU device, the run's compilation cache, no source tree on the path,
    bytecode written where the modules are (the import check below), no pip
    network calls."""
    env = subprocess_env(1)
    for k in ("PYTHONPATH", "PYTHONHOME", "PYTHONDONTWRITEBYTECODE"):
        env.pop(k, None)
    env.pop("PYTHONPYCACHEPREFIX", None)
    env.pop("VIRTUAL_ENV", None)
    env.update(PIP_DISABLE_PIP_VERSION_CHECK="1", PIP_NO_INPUT="1")
    return env


def _run(args, cwd, **kwargs) -> subprocess.CompletedProcess:
    proc = subprocess.run(
        [str(a) for a in args],
        cwd=cwd,
        env=_env(),
        capture_output=True,
        text=True,
        timeout=_TIMEOUT,
        **kwargs,
    )
    return proc


def _check(proc: subprocess.CompletedProcess) -> subprocess.CompletedProcess:
    assert proc.returncode == 0, (
        f"{' '.join(proc.args)} -> {proc.returncode}\n"
        f"stdout:\n{proc.stdout[-4000:]}\nstderr:\n{proc.stderr[-4000:]}"
    )
    return proc


def _inside(path: str, folder: str) -> bool:
    path, folder = os.path.realpath(path), os.path.realpath(folder)
    return os.path.commonpath([path, folder]) == folder


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    """{"wheel", "python" (the venv's), "purelib" (its site-packages), "cwd",
    "source" (the copied tree)}."""
    base = tmp_path_factory.mktemp("wheel")
    source = base / "src"
    shutil.copytree(REPO, source, symlinks=True, ignore=_ignore(REPO))
    wheels = base / "wheels"
    cwd = base / "cwd"
    cwd.mkdir()
    _check(
        _run(
            [
                sys.executable,
                "-m",
                "pip",
                "wheel",
                source,
                "--no-deps",
                "--no-build-isolation",
                "--no-index",
                "-w",
                wheels,
            ],
            cwd,
        )
    )
    (wheel,) = wheels.glob("jaxpara-*.whl")
    venv = base / "venv"
    _check(
        _run(
            [sys.executable, "-m", "venv", "--system-site-packages", "--without-pip"]
            + [venv],
            cwd,
        )
    )
    python = venv / "bin" / "python"
    # --no-compile: the bytecode of the modules the CLI imports shows it ran
    # the venv's files (test_cli_...).
    _check(
        _run(
            [python, "-m", "pip", "install", "--no-deps", "--no-index", "--no-compile"]
            + [wheel],
            cwd,
        )
    )
    purelib = _check(
        _run(
            [python, "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
            cwd,
        )
    ).stdout.strip()
    assert _inside(purelib, venv)
    return {
        "wheel": wheel,
        "python": python,
        "purelib": purelib,
        "cwd": cwd,
        "source": source,
    }


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    return demo_run.trained_demo(tmp_path_factory)


def test_wheel_holds_the_package_and_no_configs(installed):
    """Every module of jaxpara/ (config_schema included: an installed
    predict rebuilds the run's config from it); no configs/ or tests/."""
    with zipfile.ZipFile(installed["wheel"]) as z:
        names = set(z.namelist())
    assert "jaxpara/config_schema.py" in names
    assert "jaxpara/predict.py" in names
    assert not any(n.startswith("configs/") for n in names)
    tops = {n.split("/", 1)[0] for n in names}
    assert tops == {"jaxpara", "jaxpara-0.1.0.dist-info"}, tops
    source = installed["source"]
    modules = {
        os.path.relpath(os.path.join(d, n), source).replace(os.sep, "/")
        for d, _, files in os.walk(source / "jaxpara")
        for n in files
        if n.endswith(".py")
    }
    assert modules - names == set(), "modules missing from the wheel"


def test_venv_imports_the_wheel_not_the_source_tree(installed):
    """The venv's copy shadows the system site-packages' editable finder."""
    script = (
        "import importlib.util, json, sys, jaxpara\n"
        "print(json.dumps({'file': jaxpara.__file__, 'path': list(jaxpara.__path__),"
        " 'configs': importlib.util.find_spec('configs') is not None,"
        " 'sys_path': sys.path}))\n"
    )
    proc = _check(_run([installed["python"], "-c", script], installed["cwd"]))
    got = json.loads(proc.stdout.strip().splitlines()[-1])
    print("venv: jaxpara.__file__ =", got["file"])
    purelib = installed["purelib"]
    assert _inside(got["file"], os.path.join(purelib, "jaxpara")), got
    assert not _inside(got["file"], REPO), got
    assert all(_inside(p, purelib) for p in got["path"]), got
    assert not got["configs"], "the source tree's configs/ is importable"
    assert not any(p and _inside(p, REPO) for p in got["sys_path"]), got


def test_cli_of_the_wheel_matches_the_editable_api(installed, demo, tmp_path):
    """`python -m jaxpara.predict` of the venv on a workdir trained by the
    editable install: exit 0, one prediction per file with one of the run's
    labels, and the posteriors of the editable install's Predictor."""
    with open(os.path.join(demo["workdir"], "predictions.csv")) as f:
        rows = [r for r in csv.DictReader(f) if r["split"] == "test"][:2]
    by_id = corpora.read_corpus("iemocap", demo["root"]).by_id()
    files = [by_id[r["utterance_id"]].path for r in rows]
    # And one outside the corpus: a stereo copy of the first.
    audio, rate = sf.read(files[0], dtype="float32")
    stereo = str(tmp_path / "stereo copy.wav")
    sf.write(stereo, np.stack([audio, 0.5 * audio], axis=-1), rate)
    files.append(stereo)

    out_csv = tmp_path / "preds.csv"
    proc = _check(
        _run(
            [
                installed["python"],
                "-m",
                "jaxpara.predict",
                f"--workdir={demo['workdir']}",
                f"--output={out_csv}",
                *files,
            ],
            installed["cwd"],
        )
    )
    # The CLI ran the venv's modules: --no-compile, so their bytecode was
    # written by this run.
    cache = os.path.join(installed["purelib"], "jaxpara", "__pycache__")
    for module in ("predict", "rundir", "config_schema"):
        assert any(n.startswith(module + ".") for n in os.listdir(cache)), module

    predictor = predict.Predictor.from_workdir(demo["workdir"])
    labels = predictor.labels
    expected = predictor.predict(files)
    assert all(p.error is None for p in expected)

    lines = proc.stdout.strip().splitlines()
    assert lines[0].split("\t") == [
        "path",
        "prediction",
        *(f"p_{k}" for k in labels),
        "speech",
        "num_segments",
    ]
    assert [line.split("\t")[0] for line in lines[1:]] == files
    assert f"{len(files)} of {len(files)} files predicted" in proc.stderr
    with open(out_csv) as f:
        written = list(csv.DictReader(f))
    assert [r["path"] for r in written] == files
    for r, p in zip(written, expected):
        assert r["error"] == ""
        assert r["prediction"] in labels
        assert r["prediction"] == p.label
        assert int(r["num_segments"]) == p.num_segments >= 1
        got = np.array([float(r[f"p_{k}"]) for k in labels])
        np.testing.assert_allclose(got, p.posteriors, atol=1e-5)  # 6 decimals.
