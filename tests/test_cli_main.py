"""The root CLI: version, help, one-line errors with exit code 2, --debug tracebacks."""

from __future__ import annotations

import subprocess
import sys

import pytest

from posetune import __version__
from posetune.cli.main import main
from posetune.errors import ConfigError


def run(args, capsys):
    with pytest.raises(SystemExit) as e:
        main(args)
    out = capsys.readouterr()
    return e.value.code, out.out, out.err


def test_version(capsys):
    code, out, _ = run(["--version"], capsys)
    assert code == 0 and __version__ in out


def test_help_lists_groups(capsys):
    code, out, _ = run(["--help"], capsys)
    assert code == 0
    for group in ("data", "config", "train", "eval", "predict", "metrics", "weights"):
        assert group in out


def test_config_error_is_one_line_exit_2(tmp_path, capsys):
    p = tmp_path / "c.yaml"
    p.write_text("train: {epochs: ten}\n")
    code, out, err = run(["config", "show", str(p)], capsys)
    assert code == 2
    assert "Traceback" not in err and "train.epochs" in err and len(err.strip().splitlines()) == 1


def test_config_show_prints_resolved(tmp_path, capsys):
    p = tmp_path / "c.yaml"
    p.write_text("train: {epochs: 3}\n")
    code, out, _ = run(["config", "show", str(p), "train.optimizer.lr=0.5"], capsys)
    assert code == 0 and "epochs: 3" in out and "lr: 0.5" in out and "augment:" in out


def test_debug_shows_traceback(tmp_path):
    p = tmp_path / "c.yaml"
    p.write_text("train: {epochs: ten}\n")
    with pytest.raises(ConfigError):
        main(["--debug", "config", "show", str(p)])


def test_console_script_installed(tmp_path):
    exe = [sys.executable, "-m", "posetune.cli.main"]
    r = subprocess.run([*exe, "config", "show", str(tmp_path / "missing.yaml")], capture_output=True, text=True)
    assert r.returncode == 2 and "not found" in r.stderr and "Traceback" not in r.stderr


def test_worker_error_keeps_only_the_original_message():
    from posetune.cli.main import user_message
    from posetune.errors import DataError

    wrapped = DataError("Caught DataError in DataLoader worker process 0.\nOriginal Traceback (most recent call last):\n"
                        '  File "x.py", line 1, in f\nposetune.errors.DataError: a.jpg: cannot decode image — replace it')
    assert user_message(wrapped) == "a.jpg: cannot decode image — replace it"
    assert user_message(DataError("bad", where="f.json", hint="fix")) == "f.json: bad — fix"
