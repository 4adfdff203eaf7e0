"""The command-line tools on bad input: exit status 2 and one line
`error: ...` naming the key or file, no traceback (jaxpara.errors); with
--verbose or JAXPARA_VERBOSE=1 the traceback is shown."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from jaxpara import errors
from tests import demo_run
from tests.subproc import REPO, subprocess_env
from tests.test_train import _overrides


def _cli(module: str, *args, env_extra=None) -> subprocess.CompletedProcess:
    env = {**subprocess_env(1), **(env_extra or {})}
    return subprocess.run(
        [sys.executable, "-m", module, *map(str, args)],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


def _one_error_line(proc: subprocess.CompletedProcess) -> str:
    """Asserts exit 2, no traceback, exactly one `error: ` line; returns it."""
    assert proc.returncode == errors.EXIT_USER_ERROR, proc.stderr[-3000:]
    assert "Traceback" not in proc.stderr, proc.stderr[-3000:]
    lines = [x for x in proc.stderr.splitlines() if x.startswith("error: ")]
    assert len(lines) == 1, proc.stderr[-3000:]
    return lines[0]


def _main(workdir, *overrides, **env):
    return _cli(
        "jaxpara.main",
        "--config=configs/demo.py",
        f"--workdir={workdir}",
        *overrides,
        env_extra=env,
    )


@pytest.mark.parametrize(
    "override, named",
    [
        # A typo in a key: named in full, with ml_collections' suggestion.
        (
            "--config.train.lerning_rate=0.1",
            ["--config.train.lerning_rate", "'lerning_rate'", "learning_rate"],
        ),
        ("--config.trian.num_epochs=1", ["--config.trian.num_epochs", "'trian'"]),
        # A value of the wrong type (absl) and one the code refuses.
        ("--config.train.batch_size=abc", ["--config.train.batch_size=abc"]),
        (
            "--config.train.selection_metric=accuracy",
            ["train.selection_metric='accuracy'", "f1_macro"],
        ),
    ],
)
def test_bad_config_is_one_line_naming_the_key(tmp_path, override, named):
    line = _one_error_line(_main(tmp_path / "wd", override))
    for text in named:
        assert text in line, line
    assert not (tmp_path / "wd" / "checkpoints").exists()


def test_missing_corpus_root_names_the_folder(tmp_path):
    missing = tmp_path / "no such corpus"
    line = _one_error_line(_main(tmp_path / "wd", f"--config.data.root={missing}"))
    assert str(missing) in line and "does not exist" in line, line


def test_verbose_shows_the_traceback(tmp_path):
    bad = "--config.train.selection_metric=accuracy"
    for proc in (
        _main(tmp_path / "wd", bad, "--verbose"),
        _main(tmp_path / "wd", bad, JAXPARA_VERBOSE="1"),
    ):
        assert proc.returncode != 0
        assert "Traceback" in proc.stderr
        assert "ConfigError: train.selection_metric='accuracy'" in proc.stderr


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    return demo_run.trained_demo(tmp_path_factory)


def test_corrupt_audio_under_on_error_raise_names_the_file(demo, tmp_path):
    """The demo corpus has 2 corrupt training files; data.on_error=raise
    refuses on the first (in training order), naming it and the way out."""
    os.symlink(os.path.join(demo["workdir"], "cache"), tmp_path / "cache")
    flags = _overrides(
        demo["root"], **{"train.num_epochs": 1, "data.on_error": "raise"}
    )
    line = _one_error_line(_main(tmp_path, *flags))
    assert demo["corrupt"]["Ses01F_impro01_F001"] in line, line
    assert "data.on_error='skip'" in line, line
    assert not (tmp_path / "checkpoints").exists()


def test_predict_and_report_on_an_untrained_workdir(demo, tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    line = _one_error_line(
        _cli("jaxpara.predict", f"--workdir={empty}", tmp_path / "x.wav")
    )
    assert str(empty / "config.json") in line, line
    line = _one_error_line(_cli("jaxpara.report", f"--workdir={empty}"))
    assert str(empty / "results.json") in line, line
    # A trained workdir, a fold it does not have.
    line = _one_error_line(
        _cli("jaxpara.predict", f"--workdir={demo['workdir']}", "--fold=Session9", "x")
    )
    assert "Session9" in line, line


def test_run_cli_turns_user_errors_into_status_2_and_keeps_bugs(capsys, monkeypatch):
    monkeypatch.delenv(errors.VERBOSE_ENV, raising=False)

    def config_error(argv):
        raise errors.ConfigError("train.x=1; expected\nsomething else")

    assert errors.run_cli(config_error, ["prog"]) == errors.EXIT_USER_ERROR
    assert capsys.readouterr().err == "error: train.x=1; expected something else\n"

    def returns_none(argv):
        return None

    assert errors.run_cli(returns_none, ["prog"]) == 0

    def bug(argv):
        raise KeyError("not the user's fault")

    with pytest.raises(KeyError):
        errors.run_cli(bug, ["prog"])
    with pytest.raises(errors.ConfigError):
        errors.run_cli(config_error, ["prog", "--verbose"])
    monkeypatch.setenv(errors.VERBOSE_ENV, "1")
    with pytest.raises(errors.ConfigError):
        errors.run_cli(config_error, ["prog"])
