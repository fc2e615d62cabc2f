"""segkit.data.download against a local HTTP server: resume, checksums, safe extraction, markers,
mirrors and the Cityscapes login. All offline."""

from __future__ import annotations

import hashlib
import io
import json
import logging
import pickle
import re
import socket
import struct
import tarfile
import threading
import time
import urllib.parse
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from omegaconf import OmegaConf
from rich.console import Console

from segkit.data import download as dl
from segkit.data.download import (
    ChecksumError,
    DownloadError,
    LoginError,
    ManualDownloadRequired,
    Resource,
    UnsafeArchiveError,
    download_cityscapes,
    download_file,
    extract_archive,
    fetch,
    with_mirror,
)

LOGGER = "segkit.data.download"
CS_USER, CS_PASSWORD = "alice", "s3cret"


# --------------------------------------------------------------------------- test server
@dataclass
class ServerState:
    files: dict[str, bytes] = field(default_factory=dict)  # URL path -> content
    honour_range: bool = True
    corrupt: bool = False  # flip one byte of every body
    cut: tuple[str, int] | None = None  # ("eof" | "reset" | "stall", bytes) on a path's 1st GET
    requests: list[dict] = field(default_factory=list)  # path, range, status, sent
    cut_paths: set[str] = field(default_factory=set)
    cityscapes: dict[str, bytes] = field(default_factory=dict)  # package name -> zip

    def log(self, path: str) -> list[dict]:
        return [r for r in self.requests if r["path"] == path]


class Handler(BaseHTTPRequestHandler):
    server: Server

    def log_message(self, format: str, *args: object) -> None:  # quiet
        pass

    # -- static files, with switchable behaviour
    def send_body(self, data: bytes) -> None:
        st = self.server.state
        record = {"path": self.path, "range": self.headers.get("Range"), "status": 0, "sent": 0}
        st.requests.append(record)
        if st.corrupt:
            data = data[:10] + bytes([data[10] ^ 0xFF]) + data[11:]
        start = 0
        match = re.fullmatch(r"bytes=(\d+)-", record["range"] or "")
        if match and st.honour_range:
            start = int(match[1])
            if start >= len(data):
                record["status"] = 416
                self.send_response(416)
                self.send_header("Content-Range", f"bytes */{len(data)}")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            record["status"] = 206
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        else:
            record["status"] = 200
            self.send_response(200)
        body = data[start:]
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Content-Type", "application/octet-stream")
        self.end_headers()
        if st.cut and self.path not in st.cut_paths:
            st.cut_paths.add(self.path)
            style, n = st.cut
            # counted before writing: the client may finish reading before this thread resumes
            record["sent"] += min(n, len(body))
            self.wfile.write(body[:n])
            if style == "stall":  # hold the connection silent past the client's timeout
                time.sleep(2.5)
            elif style == "reset":  # RST instead of FIN, once the client has read the bytes
                time.sleep(0.3)
                self.connection.setsockopt(
                    socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0)
                )
                self.connection.close()
            self.close_connection = True
            return
        record["sent"] += len(body)
        self.wfile.write(body)

    def do_GET(self) -> None:
        path, _, query = self.path.partition("?")
        params = dict(urllib.parse.parse_qsl(query, keep_blank_values=True))
        st = self.server.state
        if path in ("/login", "/downloads/", "/md5-sum/", "/file-handling/"):
            return self.cityscapes(path, params)
        if path in st.files:
            return self.send_body(st.files[path])
        self.send_error(404)

    # -- a fake cityscapes-dataset.com
    def logged_in(self) -> bool:
        return "auth=ok" in (self.headers.get("Cookie") or "")

    def reply(self, status: int, body: bytes = b"", headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def cityscapes(self, path: str, params: dict[str, str]) -> None:
        st = self.server.state
        st.requests.append({"path": path, "range": None, "status": 0, "sent": 0})
        packages = sorted(st.cityscapes)
        ids = {str(i + 1): name for i, name in enumerate(packages)}
        if path == "/login":
            return self.reply(200, b"<form>", {"Set-Cookie": "PHPSESSID=s1; Path=/"})
        if not self.logged_in():
            return self.reply(302, headers={"Location": "/login"})
        if path == "/downloads/" and "list" in params:
            listing = [
                {"name": n, "packageID": i, "size": "1KB", "thirdparty": "0"}
                for i, n in ids.items()
            ]
            return self.reply(200, json.dumps(listing).encode())
        name = ids.get(params.get("packageID", ""))
        if name is None:
            return self.reply(404)
        if path == "/md5-sum/":
            md5 = hashlib.md5(st.cityscapes[name]).hexdigest()
            return self.reply(200, f"{md5}  {name}\n".encode())
        return self.send_body(st.cityscapes[name])

    def do_POST(self) -> None:
        self.server.state.requests.append({"path": self.path, "range": None, "status": 0})
        length = int(self.headers.get("Content-Length", 0))
        form = dict(urllib.parse.parse_qsl(self.rfile.read(length).decode()))
        good = (
            self.path == "/login"
            and "PHPSESSID=s1" in (self.headers.get("Cookie") or "")
            and form == {"username": CS_USER, "password": CS_PASSWORD, "submit": "Login"}
        )
        if good:
            self.reply(302, headers={"Location": "/", "Set-Cookie": "auth=ok; Path=/"})
        else:
            self.reply(200, b"<form>bad credentials</form>")


class Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), Handler)
        self.state = ServerState()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"

    def add(self, path: str, data: bytes) -> str:
        self.state.files[path] = data
        return self.url + path


@pytest.fixture
def server(monkeypatch: pytest.MonkeyPatch) -> Iterator[Server]:
    monkeypatch.setattr(dl, "RETRY_BACKOFF_S", 0.01)
    for var in ("http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY", "all_proxy"):
        monkeypatch.delenv(var, raising=False)
    srv = Server()
    thread = threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.05})
    thread.daemon = True
    thread.start()
    yield srv
    srv.shutdown()
    srv.server_close()


# --------------------------------------------------------------------------- archives
def payload(n: int, seed: int = 0) -> bytes:
    out = bytearray()
    block = hashlib.sha256(str(seed).encode()).digest()
    while len(out) < n:
        block = hashlib.sha256(block).digest()
        out += block
    return bytes(out[:n])


def make_zip(entries: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in entries.items():
            zf.writestr(zipfile.ZipInfo(name), data)
    return buf.getvalue()


def make_tar(
    entries: dict[str, bytes], links: dict[str, tuple[bytes, str]] | None = None, mode: str = "w:gz"
) -> bytes:
    """A tar with regular files ``entries`` and then ``links``: name -> (type, target)."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode=mode) as tf:
        for name, data in entries.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
        for name, (kind, target) in (links or {}).items():
            info = tarfile.TarInfo(name)
            info.type = kind
            info.linkname = target
            tf.addfile(info)
    return buf.getvalue()


def md5(data: bytes) -> str:
    return hashlib.md5(data).hexdigest()


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def all_files(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if not p.is_dir())


# --------------------------------------------------------------------------- with_mirror
@pytest.mark.parametrize(
    ("url", "mirror", "expected"),
    [
        ("https://host.org/a/b.zip", None, "https://host.org/a/b.zip"),
        ("https://host.org/a/b.zip", "", "https://host.org/a/b.zip"),
        ("https://host.org/a/b.zip", "http://127.0.0.1:8000", "http://127.0.0.1:8000/a/b.zip"),
        (
            "https://host.org:8443/a/b.zip?x=1",
            "http://127.0.0.1:8000/base",
            "http://127.0.0.1:8000/base/a/b.zip?x=1",
        ),
        ("http://host.org/a/b.zip", "https://m.lan/base/", "https://m.lan/base/a/b.zip"),
        ("https://www.cityscapes-dataset.com", "http://m:1/cs", "http://m:1/cs"),
    ],
)
def test_with_mirror(url: str, mirror: str | None, expected: str) -> None:
    assert with_mirror(url, mirror) == expected


def test_with_mirror_rejects_a_mirror_without_host() -> None:
    with pytest.raises(ValueError, match="scheme://host"):
        with_mirror("https://host.org/a.zip", "127.0.0.1:8000")


# --------------------------------------------------------------------------- fetch
def test_fetch_zip_and_targz_verified_extracted_and_archives_removed(
    server: Server, tmp_path: Path
) -> None:
    readme, image = b"hello\n", payload(5000)
    zip_bytes = make_zip({"pkg/": b"", "pkg/README": readme, "pkg/img/a.png": image})
    tar_bytes = make_tar({"labels/x.png": b"label-x", "labels/y.png": b"label-y"})
    resources = [
        Resource(
            url=server.add("/d/pkg.zip", zip_bytes),
            md5=md5(zip_bytes),
            size=len(zip_bytes),
            strip_components=1,
            subdir="images",
        ),
        Resource(url=server.add("/d/labels.tar.gz", tar_bytes), sha256=sha256(tar_bytes)),
    ]
    root = tmp_path / "data"
    assert fetch(resources, root, progress=False) is True

    assert (root / "images/README").read_bytes() == readme
    assert (root / "images/img/a.png").read_bytes() == image
    assert (root / "labels/y.png").read_bytes() == b"label-y"
    assert not (root / "images/pkg").exists()  # stripped
    state = root / ".segkit-download"
    assert not any((state / "files").iterdir())  # archives removed
    marker = json.loads((state / "pkg.zip.json").read_text())
    assert marker["url"] == resources[0].url and marker["md5"] == md5(zip_bytes)
    assert marker["sha256_actual"] == sha256(zip_bytes)
    assert marker["contents"] == ["images/README", "images/img"]
    assert json.loads((state / "labels.tar.gz.json").read_text())["contents"] == ["labels"]


def test_second_fetch_is_a_no_op_and_says_so(
    server: Server, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    data = make_zip({"a/one.txt": b"1"})
    res = [Resource(url=server.add("/one.zip", data), md5=md5(data))]
    root = tmp_path / "root"
    assert fetch(res, root, progress=False) is True
    served = len(server.state.requests)

    caplog.set_level(logging.INFO, logger=LOGGER)
    assert fetch(res, root, progress=False) is False
    assert len(server.state.requests) == served  # nothing asked of the server
    assert "already in place: one.zip" in caplog.text
    assert "nothing to do" in caplog.text

    # The marker alone is not enough: deleted files are fetched again.
    (root / "a/one.txt").unlink()
    (root / "a").rmdir()
    assert fetch(res, root, progress=False) is True
    assert (root / "a/one.txt").read_bytes() == b"1"


def test_keep_archives(server: Server, tmp_path: Path) -> None:
    data = make_tar({"x/f.txt": b"f"}, mode="w:bz2")
    res = [Resource(url=server.add("/x.tar.bz2", data), sha1=hashlib.sha1(data).hexdigest())]
    assert fetch(res, tmp_path, progress=False, keep_archives=True)
    assert (tmp_path / ".segkit-download/files/x.tar.bz2").read_bytes() == data
    assert (tmp_path / "x/f.txt").read_bytes() == b"f"


@pytest.mark.parametrize("as_config", [False, True], ids=["dict", "DictConfig"])
def test_resource_given_as_a_mapping_with_mirror(
    server: Server, tmp_path: Path, as_config: bool
) -> None:
    data = make_tar({"VOCdevkit/VOC2012/JPEGImages/1.jpg": b"jpg"}, mode="w")
    server.add("/pub/voc.tar", data)
    spec = {
        "url": "https://datasets.example.org/pub/voc.tar",  # unreachable: the mirror serves it
        "md5": md5(data).upper(),  # as some sites publish them
        "size": len(data),
        "strip_components": 2,
    }
    resources = [OmegaConf.create(spec) if as_config else spec]
    assert fetch(resources, tmp_path, mirror=server.url, progress=False)
    assert (tmp_path / "JPEGImages/1.jpg").read_bytes() == b"jpg"
    assert server.state.requests[0]["path"] == "/pub/voc.tar"


def test_resource_mapping_with_unknown_field_is_refused() -> None:
    with pytest.raises(ValueError, match=r"unknown resource field.*'sha265'"):
        fetch([{"url": "https://h/x.zip", "sha265": "0" * 64}], "/nonexistent", progress=False)


def test_resource_without_checksum_warns_and_records_sha256(
    server: Server, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    data = b"road\nsidewalk\n"
    caplog.set_level(logging.INFO, logger=LOGGER)
    assert fetch([{"url": server.add("/classes.txt", data), "subdir": "meta"}], tmp_path)
    assert (tmp_path / "meta/classes.txt").read_bytes() == data  # not an archive: moved
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert any("cannot be verified" in r.getMessage() for r in warnings)
    marker = json.loads((tmp_path / ".segkit-download/classes.txt.json").read_text())
    assert marker["sha256_actual"] == sha256(data)
    assert marker["contents"] == ["meta/classes.txt"]


# --------------------------------------------------------------------------- resume
@pytest.mark.parametrize("style", ["eof", "reset", "stall"])
def test_interrupted_download_resumes_with_range(
    server: Server, tmp_path: Path, style: str
) -> None:
    data = payload(1_000_000, seed=1)
    cut = 400_000
    server.state.cut = (style, cut)
    url = server.add("/big.bin", data)
    dest = tmp_path / "big.bin"
    out = download_file(url, dest, sha256=sha256(data), progress=False, timeout=1.0, retries=2)

    assert out == dest and dest.read_bytes() == data
    first, second, *rest = server.state.log("/big.bin")
    assert first["range"] is None and not rest
    resumed_at = int(re.fullmatch(r"bytes=(\d+)-", second["range"])[1])
    assert 0 < resumed_at <= cut and second["status"] == 206
    assert first["sent"] + second["sent"] < 1.5 * len(data)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["big.bin"]  # no .part left


def test_server_refusing_range_restarts_from_zero(server: Server, tmp_path: Path) -> None:
    data = payload(300_000, seed=2)
    server.state.honour_range = False
    server.state.cut = ("eof", 100_000)
    url = server.add("/f.bin", data)
    dest = tmp_path / "f.bin"
    download_file(url, dest, md5=md5(data), progress=False, retries=2)
    assert dest.read_bytes() == data
    _, second = server.state.log("/f.bin")
    assert second["range"] == "bytes=100000-" and second["status"] == 200


def test_stale_part_file_from_an_earlier_call_is_resumed(server: Server, tmp_path: Path) -> None:
    data = payload(200_000, seed=3)
    url = server.add("/g.bin", data)
    dest = tmp_path / "g.bin"
    (tmp_path / "g.bin.part").write_bytes(data[:150_000])
    download_file(url, dest, sha256=sha256(data), progress=False)
    assert dest.read_bytes() == data
    (request,) = server.state.log("/g.bin")
    assert request["range"] == "bytes=150000-" and request["sent"] == 50_000


def test_complete_part_file_answered_416_is_used(server: Server, tmp_path: Path) -> None:
    data = payload(20_000, seed=9)
    url = server.add("/k.bin", data)
    (tmp_path / "k.bin.part").write_bytes(data)
    download_file(url, tmp_path / "k.bin", md5=md5(data), progress=False)
    assert (tmp_path / "k.bin").read_bytes() == data
    assert [r["status"] for r in server.state.log("/k.bin")] == [416]


def test_file_url(tmp_path: Path) -> None:
    data = make_zip({"d/f.txt": b"f"})
    (tmp_path / "share").mkdir()
    (tmp_path / "share/d.zip").write_bytes(data)
    url = (tmp_path / "share/d.zip").as_uri()
    assert fetch([{"url": url, "md5": md5(data)}], tmp_path / "root", progress=False)
    assert (tmp_path / "root/d/f.txt").read_bytes() == b"f"


def test_retries_exhausted_keep_the_part_file(server: Server, tmp_path: Path) -> None:
    data = payload(100_000, seed=4)
    server.state.cut = ("eof", 30_000)
    server.state.honour_range = False
    url = server.add("/h.bin", data)
    with pytest.raises(DownloadError, match=r"after 1 attempt.*resumes"):
        download_file(url, tmp_path / "h.bin", progress=False, retries=0)
    assert (tmp_path / "h.bin.part").stat().st_size == 30_000
    assert not (tmp_path / "h.bin").exists()


def test_http_error_is_not_retried(server: Server, tmp_path: Path) -> None:
    with pytest.raises(DownloadError, match="HTTP 404"):
        download_file(server.url + "/missing.zip", tmp_path / "m.zip", progress=False)
    assert not any(tmp_path.iterdir())


# --------------------------------------------------------------------------- checksums
@pytest.mark.parametrize("kind", ["md5", "sha1", "sha256", "size"])
def test_corrupted_download_raises_checksum_error_and_leaves_nothing(
    server: Server, tmp_path: Path, kind: str
) -> None:
    data = payload(50_000, seed=5)
    url = server.add("/c.zip", data)
    if kind == "size":
        checks, expected = {"size": len(data) + 1}, str(len(data) + 1)
    else:
        expected = hashlib.new(kind, data).hexdigest()
        checks = {kind: expected}
        server.state.corrupt = True
    dest = tmp_path / "dl" / "c.zip"
    with pytest.raises(ChecksumError) as info:
        download_file(url, dest, progress=False, **checks)
    err = info.value
    message = str(err)
    assert "c.zip" in message and url in message and expected in message
    assert err.actual in message and err.actual != expected and "deleted" in message
    assert err.kind == kind
    assert not any(dest.parent.iterdir())
    assert isinstance(pickle.loads(pickle.dumps(err)), ChecksumError)


def test_corrupted_fetch_extracts_nothing_and_writes_no_marker(
    server: Server, tmp_path: Path
) -> None:
    data = make_zip({"a/b.txt": b"b"})
    server.state.corrupt = True
    with pytest.raises(ChecksumError):
        fetch([Resource(url=server.add("/z.zip", data), md5=md5(data))], tmp_path, progress=False)
    assert [p for p in all_files(tmp_path) if not p.endswith(".lock")] == []


def test_existing_file_failing_its_checksum_is_downloaded_again(
    server: Server, tmp_path: Path
) -> None:
    data = payload(10_000, seed=6)
    dest = tmp_path / "e.bin"
    dest.write_bytes(b"not it")
    download_file(server.add("/e.bin", data), dest, md5=md5(data), progress=False)
    assert dest.read_bytes() == data
    assert len(server.state.log("/e.bin")) == 1
    download_file(server.url + "/e.bin", dest, md5=md5(data), progress=False)
    assert len(server.state.log("/e.bin")) == 1  # verified, reused


# --------------------------------------------------------------------------- safe extraction
SYM, HARD, CHR, FIFO = tarfile.SYMTYPE, tarfile.LNKTYPE, tarfile.CHRTYPE, tarfile.FIFOTYPE


@pytest.mark.parametrize(
    ("files", "links", "bad"),
    [
        ({"../evil.txt": b"x"}, {}, "../evil.txt"),
        ({"ok/../../evil.txt": b"x"}, {}, "ok/../../evil.txt"),
        ({"/tmp/evil.txt": b"x"}, {}, "/tmp/evil.txt"),
        ({}, {"link": (SYM, "../outside")}, "link"),
        ({}, {"abs": (SYM, "/etc/passwd")}, "abs"),
        ({}, {"up": (SYM, ".."), "up/evil.txt": (SYM, "x")}, "up"),
        # each link stays inside on its own, chained they climb out
        ({}, {"here": (SYM, "."), "climb": (SYM, "here/..")}, "climb"),
        ({}, {"hard": (HARD, "../../etc/passwd")}, "hard"),
        ({}, {"dev": (CHR, "")}, "dev"),
        ({}, {"pipe": (FIFO, "")}, "pipe"),
    ],
    ids=["dotdot", "nested-dotdot", "absolute", "symlink-out", "symlink-abs", "through-link",
         "link-chain", "hardlink-out", "device", "fifo"],
)  # fmt: skip
def test_unsafe_tar_is_refused_before_extracting_anything(
    tmp_path: Path, files: dict[str, bytes], links: dict[str, tuple[bytes, str]], bad: str
) -> None:
    archive = tmp_path / "bad.tar.gz"
    archive.write_bytes(make_tar({"aaa-first.txt": b"fine", **files}, links))
    dest = tmp_path / "sandbox" / "dest"
    with pytest.raises(UnsafeArchiveError) as info:
        extract_archive(archive, dest)
    assert info.value.member == bad and repr(bad) in str(info.value)
    assert all_files(tmp_path / "sandbox") == []  # not even the safe first member
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.tar.gz", "sandbox"]


@pytest.mark.parametrize("bad", ["../evil.txt", "/evil.txt", "a/../../evil.txt"])
def test_unsafe_zip_is_refused(tmp_path: Path, bad: str) -> None:
    archive = tmp_path / "bad.zip"
    archive.write_bytes(make_zip({"fine.txt": b"ok", bad: b"x"}))
    dest = tmp_path / "sandbox" / "dest"
    with pytest.raises(UnsafeArchiveError, match=re.escape(repr(bad))):
        extract_archive(archive, dest)
    assert all_files(tmp_path / "sandbox") == []
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.zip", "sandbox"]


@pytest.mark.parametrize("fmt", ["tar", "zip"])
def test_existing_symlink_out_of_dest_is_not_written_through(tmp_path: Path, fmt: str) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    dest = tmp_path / "dest"
    dest.mkdir()
    (dest / "out").symlink_to(outside)  # left by something else; the archive itself is clean
    archive = tmp_path / f"a.{fmt}"
    entries = {"out/evil.txt": b"x"}
    archive.write_bytes(make_tar(entries, mode="w") if fmt == "tar" else make_zip(entries))
    with pytest.raises(UnsafeArchiveError, match=r"out/evil\.txt"):
        extract_archive(archive, dest)
    assert not any(outside.iterdir())


def test_unsafe_archive_through_fetch_leaves_no_marker(server: Server, tmp_path: Path) -> None:
    data = make_tar({"../evil.txt": b"x"})
    res = [Resource(url=server.add("/bad.tgz", data), md5=md5(data))]
    with pytest.raises(UnsafeArchiveError):
        fetch(res, tmp_path / "root", progress=False)
    assert not (tmp_path / "evil.txt").exists()
    assert not (tmp_path / "root/.segkit-download/bad.tgz.json").exists()


def test_links_inside_the_destination_are_extracted(tmp_path: Path) -> None:
    archive = tmp_path / "ok.tar"
    archive.write_bytes(
        make_tar(
            {"top/data/v1/a.txt": b"a", "top/x/../b.txt": b"b"},
            {"top/latest": (SYM, "data/v1"), "top/copy.txt": (HARD, "top/data/v1/a.txt")},
            mode="w",
        )
    )
    dest = tmp_path / "dest"
    files = extract_archive(archive, dest, strip_components=1)
    assert (dest / "latest").is_symlink() and (dest / "latest/a.txt").read_bytes() == b"a"
    assert (dest / "copy.txt").read_bytes() == b"a" and (dest / "b.txt").read_bytes() == b"b"
    assert {p.relative_to(dest.resolve()).as_posix() for p in files} == {
        "data/v1/a.txt",
        "b.txt",
        "latest",
        "copy.txt",
    }


def test_extract_archive_rejects_other_files(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("plain")
    with pytest.raises(DownloadError, match="not a zip or tar"):
        extract_archive(tmp_path / "notes.txt", tmp_path / "out")


# --------------------------------------------------------------------------- progress
def test_progress_bar_on_a_terminal(
    server: Server, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    screen = io.StringIO()
    monkeypatch.setattr(
        dl, "_console", lambda: Console(file=screen, force_terminal=True, width=120)
    )
    data = payload(300_000, seed=7)
    download_file(server.add("/p.bin", data), tmp_path / "p.bin", md5=md5(data), progress=True)
    drawn = screen.getvalue()
    assert "p.bin" in drawn and "300.0/300.0 kB" in drawn and "/s" in drawn


def test_progress_as_log_lines_when_not_a_terminal(
    server: Server, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger=LOGGER)
    data = payload(300_000, seed=8)
    download_file(server.add("/q.bin", data), tmp_path / "q.bin", md5=md5(data), progress=True)
    lines = [r.getMessage() for r in caplog.records]
    assert any(re.search(r"downloading q\.bin: .*\(100%\), .*/s", line) for line in lines)
    assert any(re.search(r"downloaded q\.bin: 300\.0 kB in .* s \(.*/s\)", line) for line in lines)


# --------------------------------------------------------------------------- cityscapes
@pytest.fixture
def cityscapes(server: Server, monkeypatch: pytest.MonkeyPatch) -> Server:
    monkeypatch.delenv("CITYSCAPES_USERNAME", raising=False)
    monkeypatch.delenv("CITYSCAPES_PASSWORD", raising=False)
    server.state.cityscapes = {
        "gtFine_trainvaltest.zip": make_zip(
            {
                "gtFine/train/aachen/a_gtFine_labelIds.png": b"gt",
                "README": b"cs",
                "license.txt": b"l",
            }
        ),
        "leftImg8bit_trainvaltest.zip": make_zip(
            {"leftImg8bit/train/aachen/a_leftImg8bit.png": b"img"}
        ),
    }
    return server


def test_cityscapes_downloads_with_credentials_from_env(
    cityscapes: Server,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    monkeypatch.setenv("CITYSCAPES_USERNAME", CS_USER)
    monkeypatch.setenv("CITYSCAPES_PASSWORD", CS_PASSWORD)
    packages = ["gtFine_trainvaltest.zip", "leftImg8bit_trainvaltest.zip"]
    root = tmp_path / "cityscapes"
    got = download_cityscapes(packages, root, mirror=cityscapes.url, progress=False)

    assert (root / "gtFine/train/aachen/a_gtFine_labelIds.png").read_bytes() == b"gt"
    assert (root / "leftImg8bit/train/aachen/a_leftImg8bit.png").read_bytes() == b"img"
    assert set(got) == {
        root / "gtFine",
        root / "README",
        root / "license.txt",
        root / "leftImg8bit",
    }
    assert not list(root.glob("*.zip")) and not any((root / ".segkit-download/files").iterdir())
    assert [r["path"] for r in cityscapes.state.requests[:2]] == ["/login", "/login"]

    served = len(cityscapes.state.requests)
    caplog.set_level(logging.INFO, logger=LOGGER)
    again = download_cityscapes(packages, root, base_url=cityscapes.url, progress=False)
    assert set(again) == set(got)
    assert len(cityscapes.state.requests) == served  # no login, no download
    assert "already in place: gtFine_trainvaltest.zip" in caplog.text


def test_cityscapes_md5_is_checked(cityscapes: Server, tmp_path: Path) -> None:
    cityscapes.state.corrupt = True
    with pytest.raises(ChecksumError, match=r"gtFine_trainvaltest\.zip"):
        download_cityscapes(
            ["gtFine_trainvaltest.zip"], tmp_path, CS_USER, CS_PASSWORD, cityscapes.url, False
        )
    assert not (tmp_path / "gtFine").exists()


def test_cityscapes_wrong_password_is_a_clear_error(cityscapes: Server, tmp_path: Path) -> None:
    with pytest.raises(LoginError, match=r"login failed for 'alice'.*bad credentials"):
        download_cityscapes(
            ["gtFine_trainvaltest.zip"], tmp_path, CS_USER, "wrong", cityscapes.url, False
        )
    assert not (tmp_path / "gtFine").exists()
    assert "/file-handling/" not in {r["path"] for r in cityscapes.state.requests}


def test_cityscapes_unknown_package_lists_the_available_ones(
    cityscapes: Server, tmp_path: Path
) -> None:
    with pytest.raises(DownloadError, match=r"no package\(s\) \['gtFien.zip'\].*gtFine_trainval"):
        download_cityscapes(["gtFien.zip"], tmp_path, CS_USER, CS_PASSWORD, cityscapes.url, False)


def test_cityscapes_without_credentials_explains_the_manual_download(
    cityscapes: Server, tmp_path: Path
) -> None:
    root = tmp_path / "cs"
    with pytest.raises(ManualDownloadRequired) as info:
        download_cityscapes(["gtFine_trainvaltest.zip"], root, base_url=cityscapes.url)
    message = str(info.value)
    for needle in (
        "https://www.cityscapes-dataset.com/register/",
        "CITYSCAPES_USERNAME",
        "CITYSCAPES_PASSWORD",
        "gtFine_trainvaltest.zip",
        str(root / "gtFine"),
        str(root / "leftImg8bit"),
    ):
        assert needle in message
    assert cityscapes.state.requests == []


def test_cityscapes_unzipped_by_hand_needs_no_credentials(tmp_path: Path) -> None:
    for split in ("train", "val", "test"):
        (tmp_path / "gtFine" / split / "city").mkdir(parents=True)
        (tmp_path / "gtFine" / split / "city" / "x.png").write_bytes(b"")
    got = download_cityscapes(["gtFine_trainvaltest.zip"], tmp_path, base_url="http://127.0.0.1:9")
    assert got == [tmp_path / "gtFine"]
