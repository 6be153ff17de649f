"""`posetune weights fetch|list`: wheel extraction, manifest, verification, one-line errors."""

from __future__ import annotations

import hashlib
import json
import os
import zipfile
from pathlib import Path

import pytest

from posetune.cli.console import out as out_console
from posetune.cli.main import main
from posetune.errors import CheckpointError
from posetune.models.mediapipe.fetch import (ensure_mediapipe_models, fetch_mediapipe, mediapipe_model_path,
                                             verify_mediapipe_models)

VERSION = "0.10.21"


def error_lines(err: str) -> list[str]:
    """The error report (progress lines like 'extracting ...' also go to stderr)."""
    return [line for line in err.strip().splitlines() if line.startswith("error:")]


def run(args, capsys):
    with pytest.raises(SystemExit) as e:
        main(args)
    captured = capsys.readouterr()
    return e.value.code, captured.out, captured.err


@pytest.fixture(autouse=True)
def _wide_console(monkeypatch):
    monkeypatch.setattr(out_console, "width", 250)


@pytest.fixture()
def cache(tmp_path, monkeypatch) -> Path:
    root = tmp_path / "cache"
    monkeypatch.setenv("POSETUNE_CACHE", str(root))
    return root


@pytest.fixture()
def small_wheel(tmp_path, mediapipe_cache) -> Path:
    """A real wheel-format zip holding three of the cached MediaPipe models (built locally, so the
    test needs no network)."""
    src = mediapipe_cache / "mediapipe" / VERSION
    wheel = tmp_path / f"mediapipe-{VERSION}-cp311-cp311-manylinux_2_28_x86_64.whl"
    with zipfile.ZipFile(wheel, "w", zipfile.ZIP_DEFLATED) as z:
        for module, name in (("hand_landmark", "hand_landmark_lite"), ("face_landmark", "face_landmark"),
                             ("pose_detection", "pose_detection")):
            z.write(src / f"{name}.tflite", f"mediapipe/modules/{module}/{name}.tflite")
        z.writestr(f"mediapipe-{VERSION}.dist-info/METADATA", f"Name: mediapipe\nVersion: {VERSION}\n")
        z.writestr("mediapipe/__init__.py", "")
    return wheel


def test_fetch_from_a_local_wheel_writes_models_and_manifest(cache, small_wheel, capsys):
    code, out, err = run(["weights", "fetch", "mediapipe", "--wheel", str(small_wheel)], capsys)
    assert code == 0, err
    folder = cache / "mediapipe" / VERSION
    manifest = json.loads((folder / "manifest.json").read_text())
    assert manifest["version"] == VERSION and set(manifest["files"]) == {"hand_landmark_lite", "face_landmark",
                                                                         "pose_detection"}
    for name, entry in manifest["files"].items():
        data = (folder / f"{name}.tflite").read_bytes()
        assert entry["sha256"] == hashlib.sha256(data).hexdigest() and entry["size"] == len(data)
        assert entry["wheel_path"].startswith("mediapipe/modules/")
        assert name in out
    assert "3 models" in out
    assert not list(folder.glob(".*"))  # no temporary files left behind


def test_list_shows_cached_models_and_flags_corrupt_files(cache, small_wheel, capsys):
    code, out, _ = run(["weights", "list"], capsys)
    assert code == 0 and "no weights cached" in out
    fetch_mediapipe(wheel=small_wheel)
    code, out, err = run(["weights", "list"], capsys)
    assert code == 0
    digest = hashlib.sha256((cache / "mediapipe" / VERSION / "face_landmark.tflite").read_bytes()).hexdigest()
    row = next(line for line in out.splitlines() if "face_landmark" in line)
    assert VERSION in row and digest[:10] in row and "ok" in row and "MB" in row
    assert str(cache / "mediapipe" / VERSION / "face_landmark.tflite") in row
    # damage one file: list says so, loading it fails with the command that repairs it
    target = cache / "mediapipe" / VERSION / "pose_detection.tflite"
    data = bytearray(target.read_bytes())
    data[1000] ^= 1
    target.write_bytes(bytes(data))
    code, out, err = run(["weights", "list"], capsys)
    assert code == 0 and "corrupt" in next(line for line in out.splitlines() if "pose_detection" in line)
    assert "--force" in err
    with pytest.raises(CheckpointError, match=r"corrupt.*posetune weights fetch mediapipe --version 0.10.21 --force"):
        mediapipe_model_path("pose_detection")
    with pytest.raises(CheckpointError):
        ensure_mediapipe_models()
    # --force repairs it
    code, _, err = run(["weights", "fetch", "mediapipe", "--wheel", str(small_wheel), "--force"], capsys)
    assert code == 0, err
    assert verify_mediapipe_models(VERSION)["pose_detection"] == target


def test_missing_model_name_lists_what_is_available(cache, small_wheel):
    fetch_mediapipe(wheel=small_wheel)
    with pytest.raises(CheckpointError, match="no model 'pose_landmark_full'.*available: face_landmark"):
        mediapipe_model_path("pose_landmark_full")
    (cache / "mediapipe" / VERSION / "face_landmark.tflite").unlink()
    with pytest.raises(CheckpointError, match="missing"):
        mediapipe_model_path("face_landmark")


@pytest.mark.parametrize("args,message", [
    (["weights", "fetch", "openpose"], "unknown weights source 'openpose'"),
    (["weights", "fetch", "mediapipe", "--wheel", "/nonexistent/mediapipe-0.10.21-x.whl"], "wheel file not found"),
])
def test_bad_fetch_arguments_are_one_line_errors(cache, args, message, capsys):
    code, _, err = run(args, capsys)
    assert code == 2 and "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert message in error_lines(err)[0]


def test_wheel_problems_are_one_line_errors(cache, small_wheel, tmp_path, capsys):
    code, _, err = run(["weights", "fetch", "mediapipe", "--wheel", str(small_wheel), "--version", "0.10.20"],
                       capsys)
    assert code == 2 and "does not match the wheel's version 0.10.21" in err
    junk = tmp_path / "mediapipe-0.10.21-junk.whl"
    junk.write_bytes(b"this is not a zip file")
    code, _, err = run(["weights", "fetch", "mediapipe", "--wheel", str(junk)], capsys)
    assert code == 2 and len(error_lines(err)) == 1 and "not a readable wheel" in error_lines(err)[0]
    assert "Traceback" not in err
    empty = tmp_path / "mediapipe-0.10.21-empty.whl"
    with zipfile.ZipFile(empty, "w") as z:
        z.writestr("mediapipe/__init__.py", "")
    code, _, err = run(["weights", "fetch", "mediapipe", "--wheel", str(empty)], capsys)
    assert code == 2 and "no mediapipe/modules/**/*.tflite" in err
    assert not (tmp_path / "cache" / "mediapipe" / VERSION / "manifest.json").exists()


def test_unreachable_package_index_is_a_network_error(cache, monkeypatch, capsys):
    monkeypatch.setenv("PIP_CONFIG_FILE", os.devnull)
    monkeypatch.setenv("PIP_INDEX_URL", "http://127.0.0.1:9/simple")  # nothing listens on the discard port
    monkeypatch.delenv("PIP_EXTRA_INDEX_URL", raising=False)
    monkeypatch.delenv("PIP_FIND_LINKS", raising=False)
    code, _, err = run(["weights", "fetch", "mediapipe"], capsys)
    lines = error_lines(err)
    assert code == 2 and len(lines) == 1 and "cannot reach the package index" in lines[0] and "--wheel" in lines[0]
    assert "Traceback" not in err


@pytest.mark.slow
def test_fetch_downloads_the_wheel_with_pip(cache, capsys):
    """The real path: pip downloads mediapipe from the package index (~36 MB)."""
    code, out, err = run(["weights", "fetch", "mediapipe", "--version", VERSION], capsys)
    assert code == 0, err
    models = verify_mediapipe_models(VERSION)
    assert {"pose_landmark_full", "hand_landmark_full", "face_landmark", "pose_detection"} <= set(models)
    assert json.loads((cache / "mediapipe" / VERSION / "manifest.json").read_text())["source"] == \
        f"pypi:mediapipe=={VERSION}"
