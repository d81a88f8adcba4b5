"""FakeHub: a test double of the Hugging Face Hub, and small real GGUF files to serve.

The hub cannot be reached from these machines, so this stands in for it. It is NOT the
hub: it answers, on 127.0.0.1 only, the HTTP that huggingface_hub's own client sends
for a download, as the hub answers it, so the library's real code (its httpx2 client,
redirect handling, Range requests, error mapping, cache writing) runs against it
through HF_ENDPOINT:

- HEAD/GET /{repo}/resolve/{revision}/{file}: for an LFS file, a 302 to a CDN (a second
  server, so another origin, as the hub's CDN is) with X-Repo-Commit, X-Linked-Etag (the
  file's SHA-256), X-Linked-Size and ETag; errors as the hub sends them: 401 or 403 with
  X-Error-Code GatedRepo for a gated repo without a token or with one lacking access,
  404 RepoNotFound / RevisionNotFound / EntryNotFound.
- GET /api/models/{repo}[/revision/{revision}]?blobs=true: the model API's JSON, with
  siblings carrying size, blobId and lfs {size, sha256, pointerSize}. Gated repos answer
  it without access, as on the hub.
- The CDN serves the bytes with ETag, Accept-Ranges and 206 answers to Range requests.

A vision repo (4b, 12b, 27b) is served with its projector as `add(repo, "mmproj-….gguf",
make_projector(…))` beside the model files: the model API lists it among the siblings,
as the hub lists every file of a repo.

Test hooks: `requests` records every request (server, method, path, headers);
`cut_next_download(after)` sends the next CDN answer's headers for the whole file, then
`after` bytes of it, then closes the connection, and answers 503 from then on (a
network gone for longer than the client's retries) until `restore()`. A file can be
served with bytes other than those its LFS hash describes (`served=`).
"""

from __future__ import annotations

import hashlib
import json
import re
import socket
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlsplit

import gguf
import numpy as np

GOOD_TOKEN = "hf_fake_token_with_access"
_RESOLVE = re.compile(r"^/(?P<repo>[^/]+/[^/]+)/resolve/(?P<rev>[^/]+)/(?P<file>.+)$")
_API = re.compile(r"^/api/models/(?P<repo>[^/]+/[^/]+?)(?:/revision/(?P<rev>[^/]+))?$")


def make_gguf(
    path: Path, *, file_type: int = gguf.LlamaFileType.MOSTLY_Q4_K_M, layers: int = 18,
    nbytes: int = 1 << 20, seed: int = 0,
) -> Path:
    """A small but complete Gemma 3 GGUF (one F32 tensor of `nbytes`), as llama.cpp's
    gguf writer makes it; it passes `check_gguf`."""
    writer = gguf.GGUFWriter(str(path), "gemma3")
    writer.add_name("Borealis test file")
    writer.add_file_type(int(file_type))
    writer.add_block_count(layers)
    writer.add_context_length(32768)
    values = np.random.default_rng(seed).random((nbytes // 4096, 1024), dtype=np.float32)
    writer.add_tensor("token_embd.weight", values)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


def make_projector(
    path: Path, *, projection_dim: int = 2560, blocks: int = 27, nbytes: int = 1 << 16,
    seed: int = 0,
) -> Path:
    """A small but complete vision projector GGUF with the metadata a Gemma 3 mmproj has
    (architecture clip, general.type mmproj, clip.projector_type gemma3, the encoder's
    block count and the projection width) and one F32 tensor of `nbytes`, not the
    tower's weights: enough for every check but loading it into libmtmd (tests that load
    one use `synth.synthesize_projector`)."""
    writer = gguf.GGUFWriter(str(path), "clip")
    writer.add_type(gguf.GGUFType.MMPROJ)
    writer.add_name("Borealis test projector")
    writer.add_file_type(int(gguf.LlamaFileType.MOSTLY_F16))
    writer.add_clip_has_vision_encoder(True)
    writer.add_clip_projector_type("gemma3")
    writer.add_vision_projection_dim(projection_dim)
    writer.add_vision_block_count(blocks)
    values = np.random.default_rng(seed).random((nbytes // 1024, 256), dtype=np.float32)
    writer.add_tensor("mm.input_projection.weight", values)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


def sha256_of(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@dataclass
class FakeFile:
    data: bytes
    """The bytes the LFS metadata describes."""
    served: bytes
    """The bytes the CDN sends (the same, unless a test corrupts them)."""

    @property
    def sha256(self) -> str:
        return sha256_of(self.data)

    @property
    def blob_id(self) -> str:  # git's blob id of the LFS pointer, as the hub reports it
        return hashlib.sha1(f"lfs {self.sha256}".encode()).hexdigest()


@dataclass
class FakeRepo:
    repo_id: str
    gated: bool
    commit: str
    files: dict[str, FakeFile] = field(default_factory=dict)


@dataclass
class Seen:
    server: str
    method: str
    path: str
    headers: dict[str, str]
    """Names in lower case."""


class FakeHub:
    """A test double of the Hugging Face Hub (see the module doc); a context manager."""

    def __init__(self):
        self.repos: dict[str, FakeRepo] = {}
        self.requests: list[Seen] = []
        self._lock = threading.Lock()
        self._cut: int | None = None
        self._down = False
        self._servers: list[ThreadingHTTPServer] = []

    def __enter__(self) -> FakeHub:
        for role in ("hub", "cdn"):
            handler = type("Handler", (_Handler,), {"fake": self, "role": role})
            server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
            server.daemon_threads = True
            threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True).start()
            self._servers.append(server)
        return self

    def __exit__(self, *exc) -> None:
        for server in self._servers:
            server.shutdown()
            server.server_close()

    @property
    def url(self) -> str:
        return _url(self._servers[0])

    @property
    def cdn_url(self) -> str:
        return _url(self._servers[1])

    # -- test hooks ------------------------------------------------------------------

    def add(self, repo_id: str, filename: str, data: bytes, *, gated: bool = False,
            served: bytes | None = None) -> FakeFile:
        with self._lock:
            commit = hashlib.sha1(f"{repo_id}{len(self.repos)}".encode()).hexdigest()
            repo = self.repos.setdefault(repo_id, FakeRepo(repo_id, gated, commit))
            repo.files[filename] = FakeFile(data, data if served is None else served)
            return repo.files[filename]

    def cut_next_download(self, after: int) -> None:
        with self._lock:
            self._cut = after

    def restore(self) -> None:
        with self._lock:
            self._down = False

    def seen(self, server: str, method: str | None = None) -> list[Seen]:
        with self._lock:
            return [s for s in self.requests
                    if s.server == server and method in (None, s.method)]

    # -- the hub ---------------------------------------------------------------------

    def answer_hub(self, h: _Handler, method: str) -> None:
        path = unquote(urlsplit(h.path).path)
        if (match := _RESOLVE.match(path)) and method in ("HEAD", "GET"):
            return self._resolve(h, match["repo"], match["rev"], match["file"])
        if (match := _API.match(path)) and method == "GET":
            return self._model_info(h, match["repo"], match["rev"] or "main", h.path)
        h.send_error_json(404, "Not Found", None)

    def _repo(self, h: _Handler, repo_id: str, revision: str) -> FakeRepo | None:
        repo = self.repos.get(repo_id)
        if repo is None:
            h.send_error_json(401, "Repository not found", "RepoNotFound")
        elif revision not in ("main", repo.commit):
            h.send_error_json(404, f"Invalid rev id: {revision}", "RevisionNotFound")
        else:
            return repo
        return None

    def _resolve(self, h: _Handler, repo_id: str, revision: str, filename: str) -> None:
        repo = self._repo(h, repo_id, revision)
        if repo is None:
            return
        if repo.gated and not self._has_access(h, repo):
            return
        file = repo.files.get(filename)
        if file is None:
            return h.send_error_json(404, "Entry not found", "EntryNotFound",
                                     {"X-Repo-Commit": repo.commit})
        h.send_answer(302, b"", {
            "Location": f"{self.cdn_url}/{file.sha256}",
            "X-Repo-Commit": repo.commit,
            "X-Linked-Etag": f'"{file.sha256}"',
            "X-Linked-Size": str(len(file.data)),
            "ETag": f'"{file.blob_id}"',
        })  # fmt: skip

    def _has_access(self, h: _Handler, repo: FakeRepo) -> bool:
        auth = h.headers.get("Authorization", "")
        if not auth:
            h.send_error_json(
                401,
                f"Access to model {repo.repo_id} is restricted. You must have access to it "
                "and be authenticated to access it. Please log in.",
                "GatedRepo",
            )
            return False
        if auth != f"Bearer {GOOD_TOKEN}":
            h.send_error_json(
                403,
                f"Access to model {repo.repo_id} is restricted and you are not in the "
                f"authorized list. Visit https://huggingface.co/{repo.repo_id} to ask for "
                "access.",
                "GatedRepo",
            )
            return False
        return True

    def _model_info(self, h: _Handler, repo_id: str, revision: str, raw: str) -> None:
        repo = self._repo(h, repo_id, revision)
        if repo is None:
            return
        blobs = [v.lower() for v in parse_qs(urlsplit(raw).query).get("blobs", [])] == ["true"]
        siblings = []
        for name, file in repo.files.items():
            sibling: dict = {"rfilename": name}
            if blobs:
                sibling |= {"size": len(file.data), "blobId": file.blob_id,
                            "lfs": {"size": len(file.data), "sha256": file.sha256,
                                    "pointerSize": 135}}
            siblings.append(sibling)
        body = {
            "_id": repo.commit[:24], "id": repo_id, "modelId": repo_id, "sha": repo.commit,
            "private": False, "gated": "manual" if repo.gated else False, "disabled": False,
            "downloads": 0, "likes": 0, "tags": ["gguf"], "library_name": "gguf",
            "createdAt": "2026-05-26T00:00:00.000Z", "lastModified": "2026-05-26T00:00:00.000Z",
            "siblings": siblings,
        }  # fmt: skip
        h.send_answer(200, json.dumps(body).encode(), {"Content-Type": "application/json"})

    # -- the CDN ---------------------------------------------------------------------

    def answer_cdn(self, h: _Handler, method: str) -> None:
        oid = urlsplit(h.path).path.strip("/")
        file = next((f for r in self.repos.values() for f in r.files.values()
                     if f.sha256 == oid), None)
        with self._lock:
            down, cut = self._down, self._cut
            if method == "GET" and cut is not None:
                self._cut, self._down = None, True
        if file is None:
            return h.send_error_json(404, "NoSuchKey", None)
        if down:
            return h.send_error_json(503, "Service Unavailable", None)
        data, status, headers = file.served, 200, {"ETag": f'"{oid}"', "Accept-Ranges": "bytes"}
        if match := re.match(r"^bytes=(\d+)-$", h.headers.get("Range", "")):
            start = int(match[1])
            if start >= len(data):
                return h.send_error_json(416, "Range Not Satisfiable", None)
            headers["Content-Range"] = f"bytes {start}-{len(data) - 1}/{len(data)}"
            data, status = data[start:], 206
        if method == "HEAD":
            return h.send_answer(status, data, headers, body=False)
        if cut is None:
            return h.send_answer(status, data, headers)
        h.send_answer(status, data[:cut], headers, length=len(data))
        h.close_connection = True
        h.connection.shutdown(socket.SHUT_RDWR)  # the network goes, mid-body


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    fake: FakeHub
    role: str

    def log_message(self, format, *args) -> None:  # quiet in tests
        pass

    def do_HEAD(self):
        self._serve("HEAD")

    def do_GET(self):
        self._serve("GET")

    def _serve(self, method: str) -> None:
        with self.fake._lock:
            headers = {name.lower(): value for name, value in self.headers.items()}
            self.fake.requests.append(Seen(self.role, method, self.path, headers))
        if self.role == "hub":
            self.fake.answer_hub(self, method)
        else:
            self.fake.answer_cdn(self, method)

    def send_answer(self, status: int, data: bytes, headers: dict[str, str], *,
                    body: bool = True, length: int | None = None) -> None:
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(data) if length is None else length))
        self.end_headers()
        if body and self.command != "HEAD":
            self.wfile.write(data)
            self.wfile.flush()

    def send_error_json(self, status: int, message: str, code: str | None,
                        extra: dict[str, str] | None = None) -> None:
        headers = {"Content-Type": "application/json", "X-Error-Message": message, **(extra or {})}
        if code:
            headers["X-Error-Code"] = code
        self.send_answer(status, json.dumps({"error": message}).encode(), headers)


def _url(server: ThreadingHTTPServer) -> str:
    host, port = server.server_address[:2]
    return f"http://{host}:{port}"


def closed_port_url() -> str:
    """An address on 127.0.0.1 where nothing listens: connections are refused at once."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return f"http://127.0.0.1:{port}"
