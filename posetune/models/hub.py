"""Downloading weight files: a local cache, atomic writes and SHA-256 checks.

Nothing here runs unless a config or command names a URL. The cache is
``$POSETUNE_CACHE/hub`` (default ``~/.cache/posetune/hub``); a file is fetched to a temporary
name in the cache folder and renamed into place only once complete (and verified), so an
interrupted download never leaves a truncated file that looks valid.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import shutil
import socket
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

from posetune.errors import CheckpointError, NetworkError
from posetune.io_utils import atomic_path

#: seconds to wait for a server before giving up
TIMEOUT_S = 30.0
_CHUNK = 1 << 20


def cache_root() -> Path:
    """posetune's cache folder: ``$POSETUNE_CACHE`` or ``~/.cache/posetune``."""
    env = os.environ.get("POSETUNE_CACHE")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "posetune"


def hub_dir() -> Path:
    """Where downloaded weight files are kept."""
    return cache_root() / "hub"


def is_url(source: str | os.PathLike) -> bool:
    return isinstance(source, str) and urllib.parse.urlparse(source).scheme in ("http", "https", "file", "ftp")


def sha256_of(path: str | os.PathLike) -> str:
    """Hex SHA-256 of a file."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(_CHUNK), b""):
            h.update(chunk)
    return h.hexdigest()


def _check_sha(path: Path, sha256: str | None, source: str) -> None:
    if not sha256:
        return
    expected = sha256.lower().strip()
    if len(expected) < 8 or not re.fullmatch(r"[0-9a-f]+", expected):
        raise CheckpointError(f"'{sha256}' is not a SHA-256 hex digest (or a prefix of at least 8 characters)",
                              where=source, hint="copy the full 64-character checksum")
    actual = sha256_of(path)
    if not actual.startswith(expected):
        raise CheckpointError(f"SHA-256 mismatch: expected {expected}, got {actual}", where=source,
                              hint="the file is corrupt or not the one expected; download it again or fix the checksum")


def cache_name(url: str) -> str:
    """File name for ``url`` in the cache: a short hash of the URL, then its base name."""
    base = Path(urllib.parse.unquote(urllib.parse.urlparse(url).path)).name or "download"
    return f"{hashlib.sha256(url.encode()).hexdigest()[:12]}-{base}"


def _local_path(source: str) -> Path:
    if source.startswith("file://"):
        parsed = urllib.parse.urlparse(source)
        return Path(urllib.request.url2pathname(parsed.path))
    return Path(source).expanduser()


def _fetch(url: str, dest: Path, progress: bool) -> None:
    host = urllib.parse.urlparse(url).netloc or url
    request = urllib.request.Request(url, headers={"User-Agent": "posetune"})
    try:
        with urllib.request.urlopen(request, timeout=TIMEOUT_S) as response, open(dest, "wb") as out:
            total = int(response.headers.get("Content-Length") or 0) or None
            bar = None
            if progress and not url.startswith("file:"):
                from rich.progress import (BarColumn, DownloadColumn, Progress, TextColumn, TimeRemainingColumn,
                                           TransferSpeedColumn)

                bar = Progress(TextColumn("[bold]downloading[/] {task.description}"), BarColumn(), DownloadColumn(),
                               TransferSpeedColumn(), TimeRemainingColumn(), transient=True)
            with bar if bar is not None else contextlib.nullcontext():
                task = bar.add_task(Path(dest.name).name, total=total) if bar is not None else None
                for chunk in iter(lambda: response.read(_CHUNK), b""):
                    out.write(chunk)
                    if bar is not None:
                        bar.update(task, advance=len(chunk))
    except urllib.error.HTTPError as e:
        raise NetworkError(f"{host} answered HTTP {e.code} ({e.reason})", where=url,
                           hint="check the URL; if the file moved, download it elsewhere and pass its local path") from None
    except urllib.error.URLError as e:
        reason = e.reason
        if url.startswith("file:"):
            raise CheckpointError(f"cannot read file ({getattr(reason, 'strerror', None) or reason})", where=url,
                                  hint="check the path") from None
        raise NetworkError(f"cannot reach {host} ({reason}): you are offline or behind a firewall", where=url,
                           hint="download the file elsewhere and pass its local path") from None
    except (socket.timeout, TimeoutError, ConnectionError) as e:
        raise NetworkError(f"cannot reach {host} ({type(e).__name__}: {e}): you are offline or behind a firewall",
                           where=url, hint="download the file elsewhere and pass its local path") from None


def download(url: str, sha256: str | None = None, cache_dir: str | os.PathLike | None = None,
             progress: bool = True) -> Path:
    """Path to a local copy of ``url`` (``http(s)://``, ``file://``, or a plain local path).

    Remote and ``file://`` URLs are copied into the cache (``cache_dir`` or :func:`hub_dir`) once;
    later calls return the cached file without touching the network. ``sha256`` (full hex digest,
    or a prefix of at least 8 characters) is verified: a downloaded file that does not match is
    deleted and a CheckpointError names both digests. A plain path is returned as it is (verified,
    never deleted). Raises NetworkError when the host cannot be reached.
    """
    source = os.fspath(url)
    if not is_url(source):
        path = _local_path(source)
        if not path.is_file():
            raise CheckpointError("file not found", where=path, hint="check the path to the weights file")
        _check_sha(path, sha256, source)
        return path
    folder = Path(cache_dir).expanduser() if cache_dir is not None else hub_dir()
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / cache_name(source)
    if target.is_file():
        try:
            _check_sha(target, sha256, source)
            return target
        except CheckpointError:
            target.unlink(missing_ok=True)  # stale or corrupt cache entry: fetch again
    if source.startswith("file://") and not _local_path(source).is_file():
        raise CheckpointError("file not found", where=source, hint="check the path in the file:// URL")
    with atomic_path(target) as tmp:
        if source.startswith("file://"):
            shutil.copyfile(_local_path(source), tmp)
        else:
            _fetch(source, tmp, progress)
        _check_sha(tmp, sha256, source)  # on mismatch the temp file is removed, the cache stays clean
    return target


def resolve(source: str | os.PathLike, sha256: str | None = None, progress: bool = True) -> Path:
    """A local path for a weights ``source`` (path or URL), downloading it if needed."""
    return download(os.fspath(source), sha256=sha256, progress=progress)
