"""Downloading dataset files: resumable HTTP with checksums, safe extraction, idempotent fetches.

:func:`fetch` brings a list of :class:`Resource` (URL, published checksums, how to extract) into
a dataset root; :func:`download_cityscapes` does the same for Cityscapes, behind the user's own
login. Downloads go to ``<file>.part`` and resume with HTTP ``Range`` after a dropped connection
or in a later call; nothing is used before its size and checksums were verified; archive members
that would land outside the destination are refused before anything is extracted. A finished
resource leaves a marker in ``root/.segkit-download/``, so a second fetch does nothing.

Only the standard library speaks HTTP (``urllib``, proxies from ``HTTP(S)_PROXY``); progress is a
``rich`` bar on a terminal and periodic log lines elsewhere.
"""

from __future__ import annotations

import contextlib
import copy
import hashlib
import http.client
import http.cookiejar
import json
import logging
import os
import re
import shutil
import ssl
import stat
import sys
import tarfile
import time
import urllib.error
import urllib.parse
import urllib.request
import zipfile
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, fields
from pathlib import Path, PurePosixPath
from typing import Any

from rich import filesize
from rich.console import Console
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TextColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)

__all__ = [
    "ChecksumError",
    "DownloadError",
    "LoginError",
    "ManualDownloadRequired",
    "Resource",
    "UnsafeArchiveError",
    "download_cityscapes",
    "download_file",
    "extract_archive",
    "fetch",
    "with_mirror",
]

log = logging.getLogger(__name__)

STATE_DIR = ".segkit-download"  # under a dataset root: markers, and kept archives in files/
USER_AGENT = "segkit-downloader/1.0 (+https://github.com/segkit)"
CHUNK_BYTES = 1 << 16
RETRY_BACKOFF_S = 1.0  # first wait between attempts; doubles each time, capped at 30 s
LOG_EVERY_S = 30.0  # plain-log progress: at most this long between lines (besides each 10 %)

_DIGEST_LENGTHS = {"md5": 32, "sha1": 40, "sha256": 64}
_RETRY_STATUS = frozenset({408, 425, 429, 500, 502, 503, 504})
_RETRYABLE = (
    http.client.HTTPException,  # IncompleteRead, RemoteDisconnected, BadStatusLine, ...
    ConnectionError,  # reset, aborted, refused
    TimeoutError,  # socket.timeout
    ssl.SSLError,
    urllib.error.URLError,  # DNS, connect errors (HTTPError is handled before)
)
_TAR_SUFFIXES = (".tar", ".tar.gz", ".tgz", ".tar.bz2", ".tbz2", ".tbz", ".tar.xz", ".txz")
_CONTENT_RANGE = re.compile(r"bytes\s+(\d+)-(\d+)/(\d+|\*)")


# --------------------------------------------------------------------------- errors
class DownloadError(RuntimeError):
    """A file could not be downloaded or put in place."""


class ChecksumError(DownloadError):
    """A downloaded file's size or digest differs from the published one (the file is deleted).

    Attributes: ``path``, ``url``, ``kind`` (``"md5"``, ``"sha1"``, ``"sha256"`` or ``"size"``),
    ``expected``, ``actual``.
    """

    def __init__(self, path: Path, url: str, kind: str, expected: str, actual: str) -> None:
        unit = " bytes" if kind == "size" else ""
        super().__init__(
            f"{kind} mismatch for {path.name} downloaded from {url}: expected "
            f"{expected}{unit}, got {actual}{unit}. The downloaded file was deleted (nothing "
            f"is left at {path}); run the "
            "download again, and if it fails the same way the server's file or the published "
            "checksum has changed."
        )
        self.path, self.url, self.kind = path, url, kind
        self.expected, self.actual = expected, actual

    def __reduce__(self) -> tuple[Any, ...]:
        return type(self), (self.path, self.url, self.kind, self.expected, self.actual)


class UnsafeArchiveError(DownloadError):
    """An archive member would be written, or would link, outside the destination folder."""

    def __init__(self, archive: Path, member: str, reason: str) -> None:
        super().__init__(
            f"unsafe archive {archive}: member {member!r} {reason}; refusing to extract it "
            "(nothing outside the destination was written)"
        )
        self.archive, self.member, self.reason = archive, member, reason

    def __reduce__(self) -> tuple[Any, ...]:
        return type(self), (self.archive, self.member, self.reason)


class ManualDownloadRequired(DownloadError):
    """The data cannot be downloaded automatically; the message says how to get it by hand."""


class LoginError(DownloadError):
    """A login (e.g. Cityscapes) was refused."""


class _Interrupted(Exception):
    """A retryable failure of one attempt (the ``.part`` file keeps what arrived)."""


# --------------------------------------------------------------------------- resources
@dataclass(frozen=True)
class Resource:
    """One file to fetch into a dataset root.

    Args:
        url: where to download it (``http(s)://`` or ``file://``).
        filename: local name; default the last path component of the URL.
        md5, sha1, sha256: hex digests as published; all that are given are verified.
        size: size in bytes as published (verified when given).
        extract: extract zip/tar archives (tar, tar.gz/tgz, tar.bz2, tar.xz); other files, or
            any file when False, are moved into place as they are.
        strip_components: leading path components dropped from archive members (as
            ``tar --strip-components``), for archives with a single top folder.
        subdir: extract (or place the file) into ``root/subdir``.
    """

    url: str
    filename: str | None = None
    md5: str | None = None
    sha1: str | None = None
    sha256: str | None = None
    size: int | None = None
    extract: bool = True
    strip_components: int = 0
    subdir: str = ""

    def __post_init__(self) -> None:
        if not isinstance(self.url, str) or not urllib.parse.urlsplit(self.url).scheme:
            raise ValueError(f"resource url must be an absolute URL, got {self.url!r}")
        for kind, length in _DIGEST_LENGTHS.items():
            value = getattr(self, kind)
            if value is None:
                continue
            value = str(value).strip().lower()
            if len(value) != length or not re.fullmatch(r"[0-9a-f]+", value):
                raise ValueError(f"{kind} of {self.url} must be {length} hex digits, got {value!r}")
            object.__setattr__(self, kind, value)
        if self.size is not None:
            object.__setattr__(self, "size", int(self.size))
            if self.size < 0:
                raise ValueError(f"size of {self.url} must be >= 0, got {self.size}")
        object.__setattr__(self, "strip_components", int(self.strip_components))
        if self.strip_components < 0:
            raise ValueError(f"strip_components must be >= 0, got {self.strip_components}")
        extract = self.extract
        if isinstance(extract, str):  # from a command line or an untyped config
            extract = extract.strip().lower() not in ("0", "false", "no", "off", "")
        object.__setattr__(self, "extract", bool(extract))
        name = self.name
        if not name or name in (".", "..") or "/" in name or "\\" in name:
            raise ValueError(
                f"cannot take a file name from {self.url!r}: give the resource a filename"
            )
        subdir = PurePosixPath(str(self.subdir or ""))
        if subdir.is_absolute() or ".." in subdir.parts:
            raise ValueError(f"subdir must be a relative path inside the root, got {self.subdir!r}")
        object.__setattr__(self, "subdir", "" if str(subdir) == "." else str(subdir))

    @property
    def name(self) -> str:
        """The local file name (``filename``, or the URL's last path component)."""
        if self.filename:
            return str(self.filename)
        return urllib.parse.unquote(PurePosixPath(urllib.parse.urlsplit(self.url).path).name)

    @property
    def checksums(self) -> dict[str, str]:
        """The published digests given, ``{"md5": ..., ...}``."""
        return {k: getattr(self, k) for k in _DIGEST_LENGTHS if getattr(self, k)}

    @classmethod
    def coerce(cls, value: Resource | Mapping[str, Any]) -> Resource:
        """A Resource from itself or a mapping of its fields (as a YAML config gives it)."""
        if isinstance(value, Resource):
            return value
        if not isinstance(value, Mapping):
            raise TypeError(f"a resource is a Resource or a mapping, got {type(value).__name__}")
        known = {f.name for f in fields(cls)}
        unknown = sorted(str(k) for k in value if k not in known)
        if unknown:
            raise ValueError(
                f"unknown resource field(s) {unknown} for {value.get('url')!r}; "
                f"known: {sorted(known)}"
            )
        return cls(**{str(k): v for k, v in value.items()})


def with_mirror(url: str, mirror: str | None) -> str:
    """``url`` with its scheme and host(:port) replaced by ``mirror``'s; a path in ``mirror`` is
    prefixed to the URL's path (``http://m/base`` + ``https://h/a/b.zip`` -> ``http://m/base/a/b.zip``).
    ``None`` or ``""`` leaves ``url`` unchanged."""
    if not mirror:
        return url
    m = urllib.parse.urlsplit(mirror)
    if not m.scheme or not m.netloc:
        raise ValueError(f"mirror must look like scheme://host[:port][/prefix], got {mirror!r}")
    u = urllib.parse.urlsplit(url)
    path = m.path.rstrip("/") + (u.path if u.path.startswith("/") or not u.path else "/" + u.path)
    return urllib.parse.urlunsplit((m.scheme, m.netloc, path, u.query, u.fragment))


# --------------------------------------------------------------------------- progress
def _console() -> Console:
    """The console progress bars draw on (stderr); tests replace it."""
    return Console(stderr=True)


def _say(message: str, *args: Any, progress: bool = True, level: int = logging.INFO) -> None:
    """Log a user-facing line; also print it when logging would drop it and output is wanted."""
    log.log(level, message, *args, stacklevel=2)
    if progress and not log.isEnabledFor(level):
        print(message % args if args else message, file=sys.stderr, flush=True)


class _ProgressReport:
    """Bytes, percentage and rate of one download: a rich bar on a terminal, log lines else."""

    def __init__(self, label: str, enabled: bool) -> None:
        self.label = label
        self.enabled = enabled
        self.total: int | None = None
        self.done = 0  # bytes in the .part file
        self.received = 0  # bytes received in this call (for the rate)
        self._t0 = time.monotonic()
        self._bar: Progress | None = None
        self._task: Any = None
        self._plain = False  # log lines instead of a bar (not a terminal)
        self._last_line = self._t0
        self._next_fraction = 0.1

    def start(self, total: int | None, done: int) -> None:
        """(Re)start at ``done`` of ``total`` bytes (after each response)."""
        self.total, self.done = total, done
        self._next_fraction = (int(10 * done / total) + 1) / 10 if total else 0.1
        if not self.enabled or self._plain:
            return
        if self._bar is not None:
            self._bar.reset(self._task, total=total, completed=done)
            return
        console = _console()
        if not console.is_terminal:
            self._plain = True
            return
        self._bar = Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            DownloadColumn(),
            TransferSpeedColumn(),
            TimeRemainingColumn(),
            console=console,
        )
        self._task = self._bar.add_task(self.label, total=total, completed=done)
        self._bar.start()

    def update(self, n: int) -> None:
        """``n`` more bytes arrived."""
        self.done += n
        self.received += n
        if self._bar is not None:
            self._bar.update(self._task, advance=n)
        elif self._plain:
            now = time.monotonic()
            crossed = bool(self.total) and self.done >= self._next_fraction * self.total
            if crossed or now - self._last_line >= LOG_EVERY_S:
                self._last_line = now
                of = ""
                if self.total:
                    self._next_fraction = (int(10 * self.done / self.total) + 1) / 10
                    of = f" / {filesize.decimal(self.total)} ({100 * self.done / self.total:.0f}%)"
                _say(
                    "downloading %s: %s%s, %s/s",
                    self.label,
                    filesize.decimal(self.done),
                    of,
                    filesize.decimal(int(self.rate())),
                )

    def elapsed(self) -> float:
        """Seconds since this download began."""
        return time.monotonic() - self._t0

    def rate(self) -> float:
        """Bytes per second received in this call."""
        return self.received / max(self.elapsed(), 1e-6)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.stop()
            self._bar = None


# --------------------------------------------------------------------------- download
def _opener() -> urllib.request.OpenerDirector:
    """urllib's default opener: redirects followed, proxies from the environment."""
    return urllib.request.build_opener()


def _hash_file(path: Path, kinds: Sequence[str]) -> dict[str, str]:
    """Hex digests of ``path`` for each algorithm in ``kinds``, in one read."""
    hashers = {k: hashlib.new(k, usedforsecurity=False) for k in kinds}
    with open(path, "rb") as fh:
        while chunk := fh.read(1 << 20):
            for h in hashers.values():
                h.update(chunk)
    return {k: h.hexdigest() for k, h in hashers.items()}


def _verify(
    path: Path,
    url: str,
    expected: Mapping[str, str],
    size: int | None,
    also: Sequence[str],
    shown: Path | None = None,
) -> dict[str, str]:
    """Check ``path``'s size and digests (deleting it and raising ChecksumError, which names
    ``shown`` or ``path``, on a mismatch); returns the digests of ``expected`` and ``also``."""
    shown = shown or path
    actual_size = path.stat().st_size
    if size is not None and actual_size != size:
        path.unlink()
        raise ChecksumError(shown, url, "size", str(size), str(actual_size))
    kinds = sorted(set(expected) | set(also))
    digests = _hash_file(path, kinds) if kinds else {}
    for kind, want in expected.items():
        if digests[kind] != want:
            path.unlink()
            raise ChecksumError(shown, url, kind, want, digests[kind])
    return digests


def _content_range(value: str | None) -> tuple[int, int | None] | None:
    """``(first byte, total or None)`` of a ``Content-Range`` header."""
    match = _CONTENT_RANGE.match(value or "")
    if not match:
        return None
    return int(match[1]), None if match[3] == "*" else int(match[3])


def _total_of_416(value: str | None) -> int | None:
    match = re.match(r"bytes\s+\*/(\d+)", value or "")
    return int(match[1]) if match else None


def _read_meta(meta: Path) -> dict[str, Any]:
    """What was saved with a ``.part`` file: its URL and ETag / Last-Modified (for ``If-Range``)."""
    try:
        data = json.loads(meta.read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _transfer(
    url: str,
    part: Path,
    opener: urllib.request.OpenerDirector,
    timeout: float,
    size: int | None,
    report: _ProgressReport,
    total_hint: int | None = None,
) -> None:
    """One attempt: append the rest of ``url`` to ``part`` (or rewrite it when the server cannot
    resume). Raises _Interrupted for retryable failures, DownloadError for final ones."""
    meta = part.with_name(part.name + ".meta")
    offset = part.stat().st_size if part.is_file() else 0
    saved = _read_meta(meta) if offset else {}
    if saved.get("url", url) != url:
        log.info("%s was begun from %s: starting again from %s", part.name, saved["url"], url)
        part.unlink()
        offset = 0
    if size is not None and offset > size:
        log.warning("%s is larger than the published size: starting again", part)
        part.unlink()
        offset = 0
    if size is not None and offset == size and offset > 0:
        return  # complete already; verified next
    request = urllib.request.Request(
        url, headers={"User-Agent": USER_AGENT, "Accept-Encoding": "identity"}
    )
    if offset:
        request.add_header("Range", f"bytes={offset}-")
        if saved.get("validator"):
            request.add_header("If-Range", saved["validator"])
    try:
        response = opener.open(request, timeout=timeout)
    except urllib.error.HTTPError as err:
        headers = err.headers
        err.close()
        if err.code == 416 and offset:
            if _total_of_416(headers.get("Content-Range")) == offset:
                return  # the part file already holds everything
            part.unlink()
            raise _Interrupted("the server refused the resume range; starting again") from None
        if err.code in _RETRY_STATUS:
            raise _Interrupted(f"HTTP {err.code} {err.reason}") from None
        hint = (
            " (a redirect was not followed: the session may have expired or access was denied)"
            if 300 <= err.code < 400
            else ""
        )
        raise DownloadError(f"cannot download {url}: HTTP {err.code} {err.reason}{hint}") from None
    with response:
        status = response.status or 200  # file:// answers without a status
        length = response.headers.get("Content-Length")
        remaining = int(length) if length and length.isdigit() else None
        if status == 206 and offset:
            span = _content_range(response.headers.get("Content-Range"))
            if span is None or span[0] != offset:
                part.unlink()
                raise _Interrupted(
                    f"the server resumed at the wrong place ({response.headers.get('Content-Range')}"
                    f" for byte {offset}); starting again"
                )
            total = span[1] or (offset + remaining if remaining is not None else size or total_hint)
            mode = "ab"
        elif 200 <= status < 300:
            if offset:
                _say(
                    "%s: the server does not resume downloads (HTTP %d to a Range request, or "
                    "the file changed): starting again from zero",
                    part.name,
                    status,
                    progress=report.enabled,
                )
            offset, mode = 0, "wb"
            total = remaining if remaining is not None else size or total_hint
            validator = response.headers.get("ETag") or response.headers.get("Last-Modified")
            if validator and validator.startswith("W/"):
                validator = None  # weak ETags cannot validate a byte range
            meta.write_text(json.dumps({"url": url, "validator": validator}))
        else:
            raise DownloadError(f"cannot download {url}: unexpected HTTP {status}")
        report.start(total, offset)
        received = 0
        with open(part, mode) as fh:
            while chunk := response.read(CHUNK_BYTES):
                fh.write(chunk)
                received += len(chunk)
                report.update(len(chunk))
        if remaining is not None and received < remaining:
            raise _Interrupted(f"connection closed after {received} of {remaining} bytes")


def _download(
    url: str,
    dest: Path,
    *,
    checksums: Mapping[str, str | None],
    size: int | None,
    progress: bool,
    timeout: float,
    retries: int,
    opener: urllib.request.OpenerDirector | None = None,
    also: Sequence[str] = (),
    total_hint: int | None = None,
) -> dict[str, str]:
    """Download, resume, verify; returns the digests verified plus those in ``also``."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    expected = {k: str(v).strip().lower() for k, v in checksums.items() if v}
    unknown = sorted(set(expected) - set(_DIGEST_LENGTHS))
    if unknown:
        raise ValueError(f"unsupported checksum(s) {unknown}; use md5, sha1 or sha256")
    if dest.is_file():
        try:
            digests = _verify(dest, url, expected, size, also)
        except ChecksumError as err:
            log.warning("%s exists but does not verify (%s): downloading it again", dest, err.kind)
        else:
            log.info("already downloaded: %s", dest)
            return digests
    part = dest.with_name(dest.name + ".part")
    meta = part.with_name(part.name + ".meta")
    opener = opener or _opener()
    report = _ProgressReport(dest.name, progress)
    _say("downloading %s to %s", url, dest, progress=progress)
    try:
        for attempt in range(retries + 1):
            try:
                _transfer(url, part, opener, timeout, size, report, total_hint)
                break
            except (_Interrupted, *_RETRYABLE) as err:
                have = part.stat().st_size if part.is_file() else 0
                if attempt == retries:
                    kept = (
                        f" {have} bytes are kept in {part}; running the download again resumes "
                        "from there."
                        if have
                        else ""
                    )
                    raise DownloadError(
                        f"downloading {url} failed after {retries + 1} attempt(s): {err}.{kept}"
                    ) from err
                wait = min(RETRY_BACKOFF_S * 2**attempt, 30.0)
                log.warning(
                    "download of %s interrupted (%s: %s); retrying in %.1f s from byte %d "
                    "(attempt %d of %d)",
                    dest.name,
                    type(err).__name__,
                    err,
                    wait,
                    have,
                    attempt + 2,
                    retries + 1,
                )
                time.sleep(wait)
    finally:
        report.close()
    if not part.is_file():  # an empty body: nothing was written
        part.touch()
    try:
        digests = _verify(part, url, expected, size, also, shown=dest)  # deletes part if bad
    finally:
        meta.unlink(missing_ok=True)
    os.replace(part, dest)
    _say(
        "downloaded %s: %s in %.1f s (%s/s)",
        dest.name,
        filesize.decimal(dest.stat().st_size),
        report.elapsed(),
        filesize.decimal(int(report.rate())),
        progress=progress,
    )
    return digests


def download_file(
    url: str,
    dest: str | Path,
    *,
    md5: str | None = None,
    sha1: str | None = None,
    sha256: str | None = None,
    size: int | None = None,
    progress: bool = True,
    timeout: float = 60.0,
    retries: int = 3,
) -> Path:
    """Download ``url`` to ``dest`` (a file path) and verify it; returns ``dest``.

    Bytes go to ``dest.part`` first, resumed with ``Range`` on each retry (and in a later call);
    a server that ignores ``Range`` restarts it cleanly from zero. ``size`` (bytes) and every
    digest given are checked before ``dest`` appears; on a mismatch the file is deleted and
    :class:`ChecksumError` raised. An existing ``dest`` that passes the checks is reused (delete
    it to force a new download). ``timeout``: seconds without data before an attempt fails;
    ``retries``: further attempts after the first (connection drops, timeouts, HTTP 5xx/429).
    """
    if not (md5 or sha1 or sha256):
        log.warning("no checksum given for %s: its integrity cannot be verified", url)
    _download(
        url,
        Path(dest),
        checksums={"md5": md5, "sha1": sha1, "sha256": sha256},
        size=size,
        progress=progress,
        timeout=timeout,
        retries=retries,
    )
    return Path(dest)


# --------------------------------------------------------------------------- extraction
def _archive_kind(path: Path) -> str | None:
    """``"zip"``, ``"tar"`` or None, by the file name."""
    name = path.name.lower()
    if name.endswith(".zip"):
        return "zip"
    if name.endswith(_TAR_SUFFIXES):
        return "tar"
    return None


def _sniff_kind(path: Path) -> str | None:
    """``"zip"``, ``"tar"`` or None, by the name, else by the content."""
    kind = _archive_kind(path)
    if kind is None and path.is_file():
        if zipfile.is_zipfile(path):
            kind = "zip"
        elif tarfile.is_tarfile(path):
            kind = "tar"
    return kind


def _member_parts(name: str) -> list[str]:
    """Path components of an archive member name (``/`` and ``\\`` both separate)."""
    return [p for p in re.split(r"[/\\]+", name) if p not in ("", ".")]


def _is_absolute(name: str) -> bool:
    return name.startswith(("/", "\\")) or bool(re.match(r"^[A-Za-z]:", name))


def _resolve(parts: Sequence[str], links: Mapping[str, str]) -> list[str] | None:
    """Resolve a relative path through the archive's own symlinks; None when it leaves the root
    (or loops)."""
    out: list[str] = []
    todo = list(parts)
    hops = 0
    while todo:
        part = todo.pop(0)
        if part == "..":
            if not out:
                return None
            out.pop()
            continue
        out.append(part)
        target = links.get("/".join(out))
        if target is not None:
            hops += 1
            if hops > 64 or _is_absolute(target):
                return None
            out.pop()
            todo = _member_parts(target) + todo
    return out


@dataclass
class _Entry:
    """One archive member as it will be extracted."""

    member: Any  # TarInfo or ZipInfo
    name: str  # the member's name in the archive
    rel: str  # its path under the destination, after strip_components
    kind: str  # "file", "dir", "symlink", "hardlink"
    link: str = ""  # symlink target (relative to its folder), or hardlink target (to the root)


def _plan(archive: Path, entries: list[_Entry], strip: int) -> list[_Entry]:
    """Apply strip_components and check every member; raises UnsafeArchiveError on the first
    one that would write or link outside the destination."""
    planned: list[_Entry] = []
    for entry in entries:
        name = entry.name
        if _is_absolute(name):
            raise UnsafeArchiveError(archive, name, "has an absolute path")
        if entry.kind == "special":
            raise UnsafeArchiveError(archive, name, "is a device, FIFO or other special file")
        parts = _member_parts(name)
        if len(parts) <= strip:
            if entry.kind not in ("dir",):
                log.debug("%s: %r dropped by strip_components=%d", archive.name, name, strip)
            continue
        entry.rel = "/".join(parts[strip:])
        if entry.kind == "hardlink":
            link_parts = _member_parts(entry.link)
            if _is_absolute(entry.link) or len(link_parts) <= strip:
                raise UnsafeArchiveError(
                    archive, name, f"is a hard link to {entry.link!r}, outside the destination"
                )
            entry.link = "/".join(link_parts[strip:])
        planned.append(entry)
    links = {}  # the archive's symlinks, by normalised path
    for e in planned:
        where = _resolve(_member_parts(e.rel), {}) if e.kind == "symlink" else None
        if where:
            links["/".join(where)] = e.link
    kept: list[_Entry] = []
    for entry in planned:
        parts = _member_parts(entry.rel)
        parent = _resolve(parts[:-1], links)
        lexical = _resolve(parts, {})
        if parent is None or lexical is None:
            raise UnsafeArchiveError(
                archive, entry.name, "would be written outside the destination"
            )
        if entry.kind == "symlink":
            target = _member_parts(entry.link)
            if _is_absolute(entry.link) or _resolve([*parent, *target], links) is None:
                raise UnsafeArchiveError(
                    archive, entry.name, f"is a symlink to {entry.link!r}, outside the destination"
                )
        elif entry.kind == "hardlink" and _resolve(_member_parts(entry.link), links) is None:
            raise UnsafeArchiveError(
                archive, entry.name, f"is a hard link to {entry.link!r}, outside the destination"
            )
        if lexical:  # "a/.." is the destination itself
            entry.rel = "/".join(lexical)
            kept.append(entry)
    return kept


def _inside(path: Path, root: Path) -> bool:
    real = os.path.realpath(path)
    return os.path.commonpath([real, str(root)]) == str(root)


def _extract_zip(archive: Path, dest: Path, strip: int) -> list[Path]:
    with zipfile.ZipFile(archive) as zf:
        entries = []
        for info in zf.infolist():
            # Unix zips (create_system 3) keep the file type in the high bits of external_attr.
            fmt = stat.S_IFMT(info.external_attr >> 16) if info.create_system == 3 else 0
            link = ""
            if info.is_dir() or fmt == stat.S_IFDIR:
                kind = "dir"
            elif fmt == stat.S_IFLNK:
                kind, link = "symlink", zf.read(info).decode("utf-8", "replace")
            elif fmt in (0, stat.S_IFREG):
                kind = "file"
            else:
                kind = "special"
            entries.append(_Entry(info, info.filename, "", kind, link))
        planned = _plan(archive, entries, strip)
        root = Path(os.path.realpath(dest))
        written: list[Path] = []
        for entry in planned:
            target = root / entry.rel
            if entry.kind == "dir":
                target.mkdir(parents=True, exist_ok=True)
                continue
            # Zip symlinks (checked above) are written as small files holding the target, as
            # Python's zipfile does: links are rare in zips and platform dependent.
            target.parent.mkdir(parents=True, exist_ok=True)
            if not _inside(target.parent, root) or target.is_symlink():
                raise UnsafeArchiveError(
                    archive, entry.name, "would be written through a link outside the destination"
                )
            with zf.open(entry.member) as src, open(target, "wb") as out:
                shutil.copyfileobj(src, out, CHUNK_BYTES * 16)
            with contextlib.suppress(OverflowError, ValueError, OSError):
                stamp = time.mktime((*entry.member.date_time, 0, 0, -1))
                os.utime(target, (stamp, stamp))
            written.append(target)
    return written


def _extract_tar(archive: Path, dest: Path, strip: int) -> list[Path]:
    with tarfile.open(archive, "r:*") as tf:
        entries = []
        for info in tf.getmembers():
            if info.isdir():
                kind = "dir"
            elif info.issym():
                kind = "symlink"
            elif info.islnk():
                kind = "hardlink"
            elif info.isreg():
                kind = "file"
            else:
                kind = "special"
            entries.append(_Entry(info, info.name, "", kind, info.linkname))
        planned = _plan(archive, entries, strip)
        members = []
        for entry in planned:
            member = copy.copy(entry.member)
            member.name = entry.rel
            if entry.kind == "hardlink":
                member.linkname = entry.link
            members.append(member)
        root = os.path.realpath(dest)
        tf.errorlevel = 1
        try:
            if hasattr(tarfile, "data_filter"):  # Python >= 3.10.12 / 3.11.4
                tf.extractall(root, members=members, filter="data")
            else:  # every member was checked by _plan
                tf.extractall(root, members=members)
        except getattr(tarfile, "FilterError", ()) as err:  # Python < 3.10.12 has none
            member = getattr(err, "tarinfo", None)
            raise UnsafeArchiveError(
                archive, getattr(member, "name", "?"), f"was refused by tarfile's filter ({err})"
            ) from err
    return [Path(root) / e.rel for e in planned if e.kind != "dir"]


def extract_archive(archive: str | Path, dest: str | Path, strip_components: int = 0) -> list[Path]:
    """Extract a zip or tar (gz/bz2/xz) archive into ``dest``; returns the files written.

    Every member is checked first: a path or link leading outside ``dest`` (``..``, absolute
    paths, symlinks or hard links pointing out) or a device file raises
    :class:`UnsafeArchiveError` naming the member, before anything is extracted. Tar archives
    are extracted with Python's ``"data"`` filter as well. ``strip_components`` drops that many
    leading path components from each member (members with no more are skipped).
    """
    archive, dest = Path(archive), Path(dest)
    kind = _sniff_kind(archive)
    if kind is None:
        raise DownloadError(f"{archive} is not a zip or tar archive")
    dest.mkdir(parents=True, exist_ok=True)
    log.info("extracting %s into %s", archive.name, dest)
    try:
        if kind == "zip":
            return _extract_zip(archive, dest, strip_components)
        return _extract_tar(archive, dest, strip_components)
    except (zipfile.BadZipFile, tarfile.ReadError, EOFError) as err:
        raise DownloadError(f"cannot read archive {archive}: {err}") from err


# --------------------------------------------------------------------------- fetch
@contextlib.contextmanager
def _locked(state: Path) -> Iterator[None]:
    """Serialise fetches into one root between processes (best effort: POSIX ``flock``)."""
    state.mkdir(parents=True, exist_ok=True)
    try:
        import fcntl
    except ImportError:  # pragma: no cover - Windows
        yield
        return
    with open(state / ".lock", "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _marker_path(state: Path, name: str) -> Path:
    return state / f"{name}.json"


def _in_place(root: Path, marker: Path, record: Mapping[str, Any]) -> bool:
    """Whether ``marker`` records this resource (same URL, checksums, layout) and its files are
    still there."""
    try:
        done = json.loads(marker.read_text())
    except (OSError, ValueError):
        return False
    for key, value in record.items():
        if done.get(key) != value:
            log.info("%s records a different %s: fetching again", marker.name, key)
            return False
    missing = [p for p in done.get("contents", []) if not (root / p).exists()]
    if missing:
        log.warning("%s was fetched but %s is missing: fetching again", marker.stem, missing[0])
        return False
    return True


def _write_marker(marker: Path, record: Mapping[str, Any]) -> None:
    tmp = marker.with_name(marker.name + ".tmp")
    tmp.write_text(json.dumps(record, indent=2, sort_keys=True) + "\n")
    os.replace(tmp, marker)


def _top_level(root: Path, paths: Sequence[Path]) -> list[str]:
    """The first components (relative to ``root``, posix) of ``paths``, in order, unique."""
    real = Path(os.path.realpath(root))
    tops: dict[str, None] = {}
    for path in paths:
        with contextlib.suppress(ValueError):
            tops.setdefault(Path(path).relative_to(real).parts[0], None)
    return list(tops)


def _put_in_place(
    res: Resource,
    url: str,
    root: Path,
    state: Path,
    record: dict[str, Any],
    *,
    progress: bool,
    keep_archives: bool,
    opener: urllib.request.OpenerDirector | None = None,
    timeout: float = 60.0,
    retries: int = 3,
    total_hint: int | None = None,
) -> list[str]:
    """Download ``res`` from ``url``, verify, extract/move it under ``root``, write its marker;
    returns the top-level paths (relative to root) it provided."""
    stored = state / "files" / res.name
    checks = res.checksums
    if stored.is_file() and not checks and not _same_download(state, res, stored):
        stored.unlink()  # cannot tell whether it is the file at this URL: download it again
    if not checks:
        _say(
            "%s has no published checksum: its integrity cannot be verified (the SHA-256 of "
            "what was downloaded is recorded)",
            res.name,
            progress=progress,
            level=logging.WARNING,
        )
    digests = _download(
        url,
        stored,
        checksums=checks,
        size=res.size,
        progress=progress,
        timeout=timeout,
        retries=retries,
        opener=opener,
        also=("sha256",),
        total_hint=total_hint,
    )
    target = root / res.subdir if res.subdir else root
    kind = _archive_kind(stored) if res.extract else None
    if kind is not None:
        files = extract_archive(stored, target, res.strip_components)
        if not files:
            log.warning(
                "%s contained no files (after strip_components=%d)", res.name, res.strip_components
            )
        if not keep_archives:
            stored.unlink()
    else:
        target.mkdir(parents=True, exist_ok=True)
        if keep_archives:
            shutil.copy2(stored, target / res.name)
        else:
            os.replace(stored, target / res.name)
        files = [Path(os.path.realpath(target)) / res.name]
    contents = [
        str(PurePosixPath(res.subdir, top)) if res.subdir else top
        for top in _top_level(target, files)
    ]
    _write_marker(
        _marker_path(state, res.name),
        {
            **record,
            "downloaded_from": url,
            "sha256_actual": digests["sha256"],
            "contents": contents,
            "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        },
    )
    return contents


def _same_download(state: Path, res: Resource, stored: Path) -> bool:
    """Whether a kept unverifiable file is what the marker recorded for this URL."""
    try:
        done = json.loads(_marker_path(state, res.name).read_text())
    except (OSError, ValueError):
        return False
    return done.get("url") == res.url and done.get("sha256_actual") == _hash_file(
        stored, ["sha256"]
    ).get("sha256")


def _record(res: Resource) -> dict[str, Any]:
    """What a marker must match for ``res`` to count as in place."""
    return {
        "url": res.url,
        "filename": res.name,
        **res.checksums,
        "size": res.size,
        "extract": res.extract,
        "strip_components": res.strip_components,
        "subdir": res.subdir,
    }


def fetch(
    resources: Sequence[Resource | Mapping[str, Any]],
    root: str | Path,
    mirror: str | None = None,
    progress: bool = True,
    keep_archives: bool = False,
) -> bool:
    """Download, verify and extract ``resources`` into ``root``; True when something was done,
    False when every resource was already in place (which it says).

    A finished resource is recorded in ``root/.segkit-download/<filename>.json`` (URL, checksums,
    the SHA-256 of the download, when); a later fetch skips it while that record matches and its
    files exist. Archives are deleted after extraction unless ``keep_archives`` (then they stay in
    ``root/.segkit-download/files/``). ``mirror`` replaces every URL's scheme and host (see
    :func:`with_mirror`). Resources without checksums are downloaded with a warning.
    """
    items = [Resource.coerce(r) for r in resources]
    names = [r.name for r in items]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise ValueError(f"several resources share the file name(s) {duplicates}: set filename")
    root = Path(root).expanduser()
    state = root / STATE_DIR
    did = False
    with _locked(state):
        for res in items:
            record = _record(res)
            marker = _marker_path(state, res.name)
            if marker.is_file() and _in_place(root, marker, record):
                _say("already in place: %s (in %s)", res.name, root / res.subdir, progress=progress)
                continue
            _put_in_place(
                res,
                with_mirror(res.url, mirror),
                root,
                state,
                record,
                progress=progress,
                keep_archives=keep_archives,
            )
            did = True
    if not did:
        _say(
            "nothing to do: all %d resource(s) already in place under %s",
            len(items),
            root,
            progress=progress,
        )
    return did


# --------------------------------------------------------------------------- cityscapes
CITYSCAPES_URL = "https://www.cityscapes-dataset.com"

# What the two main packages unzip to: folders that, when all present and non-empty, mean the
# package was unzipped by hand already.
_CITYSCAPES_LAYOUT = {
    "gtFine_trainvaltest.zip": ("gtFine/train", "gtFine/val", "gtFine/test"),
    "leftImg8bit_trainvaltest.zip": ("leftImg8bit/train", "leftImg8bit/val", "leftImg8bit/test"),
}


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    """Redirects are answers here (the login succeeds with a 302), not to be followed."""

    def redirect_request(
        self,
        req: urllib.request.Request,
        fp: Any,
        code: int,
        msg: str,
        headers: Any,
        newurl: str,
    ) -> None:
        return None


def _cityscapes_instructions(packages: Sequence[str], root: Path) -> str:
    zips = ", ".join(packages) or "gtFine_trainvaltest.zip, leftImg8bit_trainvaltest.zip"
    return (
        "Cityscapes needs an account: its licence has each user register.\n"
        "  1. Register at https://www.cityscapes-dataset.com/register/ (free for non-commercial "
        "research) and wait for the account to be approved.\n"
        "  2. Then either give your credentials: set CITYSCAPES_USERNAME and CITYSCAPES_PASSWORD "
        "in the environment (or pass them as username/password), and run the download again;\n"
        f"  3. or download {zips} yourself from https://www.cityscapes-dataset.com/downloads/ "
        f"and unzip them into {root}, so that {root / 'gtFine'} and {root / 'leftImg8bit'} "
        "exist."
    )


def _parse_size(text: str) -> int | None:
    """Approximate bytes of a size as Cityscapes lists it (``"241MB"``), for the progress bar."""
    match = re.fullmatch(r"\s*([\d.]+)\s*([KMGT]?)B?\s*", str(text).upper())
    if not match:
        return None
    return int(float(match[1]) * 1024 ** " KMGT".index(match[2] or " "))


def _hand_unzipped(root: Path, package: str) -> bool:
    dirs = _CITYSCAPES_LAYOUT.get(package)
    return bool(dirs) and all((root / d).is_dir() and any((root / d).iterdir()) for d in dirs)


def _http(
    opener: urllib.request.OpenerDirector,
    url: str,
    data: Mapping[str, str] | None = None,
    timeout: float = 60.0,
) -> tuple[int, bytes, Any]:
    """``(status, body, headers)`` of a GET (or form POST with ``data``), redirects not followed."""
    body = urllib.parse.urlencode(data).encode() if data is not None else None
    request = urllib.request.Request(url, data=body, headers={"User-Agent": USER_AGENT})
    try:
        with opener.open(request, timeout=timeout) as response:
            return response.status, response.read(), response.headers
    except urllib.error.HTTPError as err:  # redirects and errors: the caller decides
        with err:
            return err.code, err.read(), err.headers
    except _RETRYABLE as err:
        raise DownloadError(f"cannot reach {url}: {err}") from err


def download_cityscapes(
    packages: Sequence[str],
    root: str | Path,
    username: str | None = None,
    password: str | None = None,
    base_url: str = CITYSCAPES_URL,
    progress: bool = True,
    *,
    mirror: str | None = None,
    keep_archives: bool = False,
) -> list[Path]:
    """Download Cityscapes ``packages`` (e.g. ``"gtFine_trainvaltest.zip"``) with the user's own
    account and unzip them into ``root`` (giving ``root/gtFine``, ``root/leftImg8bit``);
    returns the top-level paths the packages provide.

    Logs in as cityscapesscripts' ``csDownload`` does (a form POST to ``/login``, answered by a
    redirect), looks the packages up in ``/downloads/?list``, and checks each zip against the
    MD5 from ``/md5-sum/``; downloads resume and are verified as in :func:`download_file`.
    Credentials come from the arguments or ``CITYSCAPES_USERNAME`` / ``CITYSCAPES_PASSWORD``;
    without them :class:`ManualDownloadRequired` says how to get the data by hand. Packages
    already fetched (or unzipped by hand) are skipped without logging in. ``mirror`` replaces
    the scheme and host of ``base_url``.
    """
    root = Path(root).expanduser()
    packages = [str(p) for p in packages]
    base = with_mirror(base_url, mirror).rstrip("/")
    state = root / STATE_DIR
    record = {p: {"url": f"{CITYSCAPES_URL}/{p}", "filename": p} for p in packages}
    provided: dict[str, None] = {}
    todo = []
    for package in packages:
        marker = _marker_path(state, package)
        if marker.is_file() and _in_place(root, marker, record[package]):
            _say("already in place: %s (in %s)", package, root, progress=progress)
            done = json.loads(marker.read_text())
            provided.update(dict.fromkeys(done.get("contents", [])))
        elif _hand_unzipped(root, package):
            _say("already in place: %s (unzipped in %s)", package, root, progress=progress)
            provided.update(dict.fromkeys(d.split("/")[0] for d in _CITYSCAPES_LAYOUT[package]))
        else:
            todo.append(package)
    if not todo:
        return [root / p for p in provided]

    username = username or os.environ.get("CITYSCAPES_USERNAME")
    password = password or os.environ.get("CITYSCAPES_PASSWORD")
    if not username or not password:
        raise ManualDownloadRequired(_cityscapes_instructions(todo, root))

    cookies = http.cookiejar.CookieJar()
    opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(cookies), _NoRedirect)
    status, _, _ = _http(opener, f"{base}/login")  # a session cookie first
    if status >= 400:
        raise DownloadError(f"cannot open the Cityscapes login page {base}/login: HTTP {status}")
    status, _, _ = _http(
        opener,
        f"{base}/login",
        {"username": username, "password": password, "submit": "Login"},
    )
    if status != 302:
        raise LoginError(
            f"Cityscapes login failed for {username!r} at {base}/login (HTTP {status} instead "
            "of the redirect that follows a good login): bad credentials. Check the username "
            "or e-mail and the password (arguments, or CITYSCAPES_USERNAME / "
            "CITYSCAPES_PASSWORD) and that the account was approved; logging in at "
            "https://www.cityscapes-dataset.com/login/ in a browser tells which."
        )
    log.info("logged in to %s as %s", base, username)
    status, body, _ = _http(opener, f"{base}/downloads/?list")
    try:
        listing = json.loads(body) if status == 200 else None
        available = {
            str(p["name"]): (str(p["packageID"]), _parse_size(p.get("size", "")))
            for p in listing or ()
        }
    except (ValueError, KeyError, TypeError):
        available = {}
    if not available:
        raise DownloadError(
            f"{base}/downloads/?list did not give the package list (HTTP {status}); the login "
            "may not have been accepted"
        )
    missing = [p for p in todo if p not in available]
    if missing:
        raise DownloadError(
            f"Cityscapes has no package(s) {missing} for this account; available: "
            f"{sorted(available)}"
        )

    state.mkdir(parents=True, exist_ok=True)
    with _locked(state):
        for package in todo:
            package_id, approx_size = available[package]
            query = urllib.parse.urlencode({"packageID": package_id})
            status, body, _ = _http(opener, f"{base}/md5-sum/?{query}")
            words = body.decode("ascii", "replace").split()
            md5 = words[0].lower() if words and status == 200 else ""
            if not re.fullmatch(r"[0-9a-f]{32}", md5):
                raise DownloadError(
                    f"{base}/md5-sum/?{query} did not give an MD5 for {package} (HTTP {status})"
                )
            res = Resource(url=f"{CITYSCAPES_URL}/{package}", filename=package, md5=md5)
            contents = _put_in_place(
                res,
                f"{base}/file-handling/?{query}",
                root,
                state,
                {**record[package], "md5": md5},
                progress=progress,
                keep_archives=keep_archives,
                opener=opener,
                total_hint=approx_size,
            )
            provided.update(dict.fromkeys(contents))
    return [root / p for p in provided]
