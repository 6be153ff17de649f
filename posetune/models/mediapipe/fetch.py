"""Getting MediaPipe's ``.tflite`` models: from the ``mediapipe`` wheel on PyPI, into the cache.

The wheel is downloaded with pip (``pip download --no-deps``, never installed) or taken from a
local file, and every ``mediapipe/modules/**/*.tflite`` inside it is extracted to
``<cache>/mediapipe/<version>/<name>.tflite`` (cache = ``$POSETUNE_CACHE``, default
``~/.cache/posetune``). ``manifest.json`` next to them records each file's SHA-256 and size;
files are checked against it whenever they are used, so a damaged file is reported (with the
command that repairs it) instead of being loaded.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import os
import re
import subprocess
import sys
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from posetune.errors import CheckpointError, ConfigError, NetworkError
from posetune.io_utils import atomic_path, read_json, write_json_atomic
from posetune.models.hub import cache_root, sha256_of

DEFAULT_VERSION = "0.10.21"
MANIFEST = "manifest.json"
#: the folder inside the wheel that holds the models
WHEEL_MODELS_PREFIX = "mediapipe/modules/"
#: pip timeout / retries when fetching (keeps an offline failure short)
PIP_TIMEOUT_S = 20
PIP_RETRIES = 1
_NETWORK_MARKERS = ("NewConnectionError", "Max retries exceeded", "Temporary failure in name resolution",
                    "Name or service not known", "Network is unreachable", "ConnectTimeout", "ProxyError",
                    "Could not fetch URL", "Connection refused", "ConnectionError", "ReadTimeout", "SSLError")
_FALLBACK_PLATFORM = ("--platform", "manylinux_2_28_x86_64", "--python-version", "3.11", "--implementation", "cp",
                      "--abi", "cp311")


@dataclass(frozen=True)
class CachedModel:
    """One extracted model as recorded in a manifest."""

    name: str
    version: str
    path: Path
    size: int
    sha256: str
    status: str  # "ok", "missing", "corrupt" (size or SHA-256 differ), "unchecked"


def _refetch_hint(version: str) -> str:
    return f"run `posetune weights fetch mediapipe --version {version} --force` to fetch it again"


def mediapipe_dir(version: str = DEFAULT_VERSION, cache: str | os.PathLike | None = None) -> Path:
    """``<cache>/mediapipe/<version>``."""
    root = Path(cache).expanduser() if cache is not None else cache_root()
    return root / "mediapipe" / version


def _check_version(version: str) -> str:
    version = str(version).strip()
    if not re.fullmatch(r"[0-9][0-9A-Za-z.+\-]*", version):
        raise ConfigError(f"invalid mediapipe version '{version}'", where="--version",
                          hint=f"use a release number such as {DEFAULT_VERSION}")
    return version


def wheel_version(wheel: Path) -> str | None:
    """The version in a wheel's file name (``mediapipe-0.10.21-cp311-...whl`` -> ``0.10.21``)."""
    m = re.match(r"^mediapipe-([^-]+)-", wheel.name)
    return m.group(1) if m else None


# ----------------------------------------------------------------------------- download
def download_wheel(version: str, dest: Path, log: Callable[[str], None] | None = None) -> Path:
    """Download the ``mediapipe==version`` wheel into ``dest`` with pip (not installed).

    The wheel for this interpreter is tried first; if PyPI has none, a manylinux CPython 3.11
    wheel (every platform's wheel holds the same models). Raises NetworkError when the index
    cannot be reached.
    """
    base = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:", "--no-input",
            "--disable-pip-version-check", "--timeout", str(PIP_TIMEOUT_S), "--retries", str(PIP_RETRIES),
            "-d", str(dest), f"mediapipe=={version}"]
    last = ""
    for extra in ((), _FALLBACK_PLATFORM):
        if log:
            log(f"pip download mediapipe=={version}" + (" (manylinux, CPython 3.11 wheel)" if extra else ""))
        try:
            proc = subprocess.run(base + list(extra), capture_output=True, text=True, timeout=600)
        except subprocess.TimeoutExpired:
            raise NetworkError(f"pip did not finish downloading mediapipe=={version} within 10 minutes",
                               hint="retry, or download the wheel elsewhere and pass --wheel PATH") from None
        except OSError as e:
            raise NetworkError(f"cannot run pip ({e})",
                               hint="download the wheel elsewhere and pass --wheel PATH") from None
        output = (proc.stdout or "") + (proc.stderr or "")
        wheels = sorted(dest.glob("mediapipe-*.whl"))
        if proc.returncode == 0 and wheels:
            return wheels[0]
        last = output
        if "No module named pip" in output:
            raise NetworkError("pip is not available in this Python environment",
                               hint="install pip, or download the mediapipe wheel elsewhere and pass --wheel PATH")
        if any(marker in output for marker in _NETWORK_MARKERS):
            raise NetworkError(f"pip cannot reach the package index to download mediapipe=={version}",
                               hint="check your connection/proxy (PIP_INDEX_URL), or download the wheel elsewhere "
                                    "and pass --wheel PATH")
    tail = " ".join(line.strip() for line in last.strip().splitlines()[-2:])
    raise NetworkError(f"pip found no mediapipe=={version} wheel ({tail})",
                       hint="check the version on https://pypi.org/project/mediapipe/#history, or pass --wheel PATH")


# ----------------------------------------------------------------------------- extraction
def extract_models(wheel: Path, folder: Path, version: str, source: str) -> dict[str, Path]:
    """Extract every ``.tflite`` under ``mediapipe/modules/`` of ``wheel`` into ``folder`` and
    write the manifest (last, so an interrupted extraction is never taken as complete)."""
    try:
        archive = zipfile.ZipFile(wheel)
    except FileNotFoundError:
        raise CheckpointError("wheel file not found", where=wheel, hint="check the --wheel path") from None
    except (zipfile.BadZipFile, OSError) as e:
        raise CheckpointError(f"not a readable wheel/zip file ({e})", where=wheel,
                              hint="download the mediapipe wheel again") from None
    files: dict[str, dict] = {}
    paths: dict[str, Path] = {}
    folder.mkdir(parents=True, exist_ok=True)
    with archive:
        members = sorted(n for n in archive.namelist()
                         if n.startswith(WHEEL_MODELS_PREFIX) and n.endswith(".tflite"))
        if not members:
            raise CheckpointError(f"no {WHEEL_MODELS_PREFIX}**/*.tflite files in the wheel", where=wheel,
                                  hint="pass a mediapipe wheel (e.g. from `pip download --no-deps mediapipe`)")
        for member in members:
            name = Path(member).stem
            if name in files:  # same file name in two modules: keep the first, qualify the second
                name = f"{Path(member).parent.name}_{name}"
            target = folder / f"{name}.tflite"
            digest = hashlib.sha256()
            size = 0
            try:
                with archive.open(member) as src, atomic_path(target) as tmp, open(tmp, "wb") as dst:
                    for chunk in iter(lambda: src.read(1 << 20), b""):
                        digest.update(chunk)
                        size += len(chunk)
                        dst.write(chunk)
            except (zipfile.BadZipFile, OSError, EOFError) as e:  # CRC errors, truncated wheel
                raise CheckpointError(f"cannot extract {member} ({e})", where=wheel,
                                      hint="the wheel is damaged; download it again") from None
            files[name] = {"file": target.name, "sha256": digest.hexdigest(), "size": size, "wheel_path": member}
            paths[name] = target
    write_json_atomic(folder / MANIFEST, {
        "package": "mediapipe", "version": version, "source": source, "wheel": wheel.name,
        "wheel_sha256": sha256_of(wheel), "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "files": files,
    })
    return paths


def fetch_mediapipe(version: str | None = None, wheel: str | os.PathLike | None = None, force: bool = False,
                    cache: str | os.PathLike | None = None,
                    log: Callable[[str], None] | None = None) -> dict[str, Path]:
    """Fetch MediaPipe's models into the cache and return ``{name: path}``.

    ``wheel``: a local mediapipe wheel (offline use); its version comes from its file name when
    ``version`` is not given. Without it the wheel is downloaded with pip. An existing, valid
    cache is kept unless ``force``.
    """
    wheel_path = Path(wheel).expanduser() if wheel is not None else None
    if wheel_path is not None:
        if not wheel_path.is_file():
            raise CheckpointError("wheel file not found", where=wheel_path, hint="check the --wheel path")
        from_name = wheel_version(wheel_path)
        if version is not None and from_name is not None and _check_version(version) != from_name:
            raise ConfigError(f"--version {version} does not match the wheel's version {from_name}",
                              where=wheel_path, hint="leave out --version or pass the matching wheel")
        version = version or from_name
        if version is None:
            raise ConfigError("cannot tell the mediapipe version from the wheel's file name", where=wheel_path,
                              hint="pass --version too")
    version = _check_version(version or DEFAULT_VERSION)
    folder = mediapipe_dir(version, cache)
    if not force and (folder / MANIFEST).is_file():
        try:
            return verify_mediapipe_models(version, cache=cache)
        except CheckpointError:
            pass  # damaged cache: fetch again below
    if wheel_path is not None:
        if log:
            log(f"extracting models from {wheel_path}")
        return extract_models(wheel_path, folder, version, source=str(wheel_path))
    with tempfile.TemporaryDirectory(prefix="posetune-mediapipe-") as tmp:
        downloaded = download_wheel(version, Path(tmp), log=log)
        if log:
            log(f"extracting models from {downloaded.name}")
        return extract_models(downloaded, folder, version, source=f"pypi:mediapipe=={version}")


# ----------------------------------------------------------------------------- verification
def read_manifest(version: str = DEFAULT_VERSION, cache: str | os.PathLike | None = None) -> dict:
    """The manifest of a cached version (CheckpointError if missing or malformed)."""
    path = mediapipe_dir(version, cache) / MANIFEST
    if not path.is_file():
        raise CheckpointError(f"MediaPipe {version} models are not in the cache", where=path.parent,
                              hint=f"run `posetune weights fetch mediapipe --version {version}`")
    try:
        manifest = read_json(path)
        files = manifest["files"]
        assert isinstance(files, dict)
    except Exception:
        raise CheckpointError("the MediaPipe manifest is unreadable", where=path, hint=_refetch_hint(version)) from None
    return manifest


def _status(path: Path, entry: dict, full: bool) -> str:
    if not path.is_file():
        return "missing"
    if path.stat().st_size != int(entry.get("size", -1)):
        return "corrupt"
    if full and sha256_of(path) != entry.get("sha256"):
        return "corrupt"
    return "ok" if full else "unchecked"


def verify_mediapipe_models(version: str = DEFAULT_VERSION, names: list[str] | None = None,
                            cache: str | os.PathLike | None = None) -> dict[str, Path]:
    """``{name: path}`` of cached models after checking size and SHA-256 against the manifest.

    ``names`` limits the check (and the result) to these models. Raises CheckpointError naming
    the damaged/missing file and the command that repairs it.
    """
    manifest = read_manifest(version, cache)
    folder = mediapipe_dir(version, cache)
    files = manifest["files"]
    wanted = list(files) if names is None else names
    out: dict[str, Path] = {}
    for name in wanted:
        if name not in files:
            raise CheckpointError(f"no model '{name}' in MediaPipe {version}", where=folder / MANIFEST,
                                  hint=f"available: {', '.join(sorted(files))}")
        entry = files[name]
        path = folder / entry["file"]
        status = _status(path, entry, full=True)
        if status != "ok":
            what = "is missing" if status == "missing" else "does not match its SHA-256/size in the manifest (corrupt)"
            raise CheckpointError(f"cached MediaPipe model {what}", where=path, hint=_refetch_hint(version))
        out[name] = path
    return out


def ensure_mediapipe_models(version: str = DEFAULT_VERSION,
                            cache: str | os.PathLike | None = None) -> dict[str, Path]:
    """``{name: path}`` of MediaPipe's models, fetching them with pip if they are not cached.

    A cached file that fails verification raises CheckpointError (it is not silently replaced:
    run ``posetune weights fetch mediapipe --force``).
    """
    version = _check_version(version)
    if not (mediapipe_dir(version, cache) / MANIFEST).is_file():
        return fetch_mediapipe(version, cache=cache)
    return verify_mediapipe_models(version, cache=cache)


def mediapipe_model_path(name: str, version: str = DEFAULT_VERSION,
                         cache: str | os.PathLike | None = None) -> Path:
    """Path of one verified model (e.g. ``pose_landmark_full``), fetching the wheel if needed."""
    version = _check_version(version)
    if not (mediapipe_dir(version, cache) / MANIFEST).is_file():
        fetch_mediapipe(version, cache=cache)
    return verify_mediapipe_models(version, names=[name], cache=cache)[name]


def list_cached(cache: str | os.PathLike | None = None, check: bool = True) -> list[CachedModel]:
    """Every model in every cached MediaPipe version (``check``: verify SHA-256, else sizes only)."""
    root = (Path(cache).expanduser() if cache is not None else cache_root()) / "mediapipe"
    out: list[CachedModel] = []
    if not root.is_dir():
        return out
    for folder in sorted(p for p in root.iterdir() if p.is_dir()):
        try:
            manifest = read_manifest(folder.name, cache)
        except CheckpointError:
            continue
        for name, entry in sorted(manifest["files"].items()):
            path = folder / entry.get("file", f"{name}.tflite")
            out.append(CachedModel(name=name, version=folder.name, path=path, size=int(entry.get("size", 0)),
                                   sha256=str(entry.get("sha256", "")), status=_status(path, entry, full=check)))
    return out
