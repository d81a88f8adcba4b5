"""OllamaDouble: a test double of the Ollama server, for testing OllamaBackend.

Ollama cannot be installed on these machines (FACTS.md), so this stands in for it. It
is NOT Ollama: it speaks Ollama's REST protocol as ollama/ollama documents it
(docs/api.md) and implements it (server/routes.go, server/create.go, server/prompt.go,
the runners), on 127.0.0.1 only, and answers with REAL inference: llama-cpp-python on a
real Gemma 3 GGUF, and the model's Go TEMPLATE rendered by Go's own text/template
(tests/gotmpl/render.go, the `go_renderer` fixture) as Ollama renders it.

Two profiles, `profile=` (PROFILES), each traced to the Ollama source it follows (the
tags as in github.com/ollama/ollama; file:function named where it is decided):

- "ollama-0.24" (the default): Ollama v0.12.6-v0.24.0, with its own Go runners
  (runner/ollamarunner, runner/llamarunner at v0.24.0). A prompt of more than num_ctx
  tokens under "truncate": false gets 400 "the input length exceeds the context length";
  with truncation on the runner keeps num_keep tokens and cuts the front of the rest to
  num_ctx. Every prompt is evaluated afresh (no prompt cache; see _Run). A change of
  num_ctx reloads the runner (server/sched.go needsReload compares the runner options).
- "ollama-0.30": Ollama v0.30.0 (2026-06-01) and later, which serve every GGUF model
  through upstream llama-server (llm/llama_server.go at v0.30.0):
  - llama-server refuses a prompt that fills its slot: `>=` num_ctx tokens (the comment in
    llamaServerRunner.completionPromptForRequest). Its error body is passed through as
    Ollama's message (statusErrorMessage, then server/routes.go GenerateHandler/ChatHandler
    send gin.H{"error": serr.ErrorMessage, "status": serr.StatusCode}), so the HTTP body
    is {"error": "<llama-server's JSON as a string>"}, status 400; the inner object is
    {"error": {"code": 400, "message": "request (N tokens) exceeds the available context
    size (M tokens), try increasing it", "type": "exceed_context_size_error",
    "n_prompt_tokens": N, "n_ctx": M}} (the llama-server wording is the one
    llm/llama_server_test.go at v0.30.0 quotes; code/type/n_prompt_tokens/n_ctx as issue
    16 read them).
  - With truncation on, Ollama cuts the token list itself to num_ctx - 1 (one token of
    headroom), keeping num_keep (completionPromptForRequest), skipping the cut when the
    prompt has fewer characters than num_ctx.
  - `shift` is a load-time setting: resolveContextShift (server/sched.go) gives the
    request's shift, else on when num_ctx < 8192; a request whose context shift or
    num_ctx differs from the loaded runner's reloads it (runnerRef.needsReload). The
    double counts reloads (`reloads`) and drops its prompt cache on each.
  - Prompt caching: llama-server gets "cache_prompt": shift (llm/llama_server.go
    Completion, CachePrompt: req.Shift; routes.go passes req.Shift == nil || *req.Shift),
    and Ollama's prompt_eval_count is llama-server's timings.prompt_n: only the prompt
    tokens evaluated, not the cached ones. The double keeps the KV cache of the last
    request and reuses its longest common prefix, as llama-server's slot does.
  Not confirmed in the source read (v0.30.0, v0.33.0-rc2): issue 16's 400 "the prompt is
  longer than the context length currently available" (truncation on, no context shift)
  does not occur in Ollama's Go code at those tags; the double never sends it by itself
  (`fail_next` can).

Both profiles (the same code at v0.24.0 and v0.30.0):
- keep_alive is an api.Duration (api/types.go Duration.UnmarshalJSON): a number of
  seconds (negative: forever) or a Go time.ParseDuration string; anything else is 400
  with Go's error ('time: missing unit in duration "300"').
- /api/show's modelfile has a FROM line for the model, then one per projector
  (server/images.go, Model.String: the projectors are "model" commands); a GGUF whose
  metadata says it is a projector (general.type "projector", or vision.block_count
  without block_count: server/create.go ggufLayers) becomes a projector layer.
- /api/create keeps typical_p like any parameter, and a LICENSE given with `from` is
  added to the base model's (server/create.go setLicense appends a layer).
- /api/ps context_length is the loaded runner's num_ctx (routes.go PsHandler,
  llama.ContextLength()).
- repeat_penalty's default is 1.1 (api/types.go DefaultOptions at v0.24.0 and v0.30.0;
  1.0 from v0.32.10).

Faithful to Ollama:
- /api/chat and /api/generate (raw or templated) stream NDJSON over chunked HTTP/1.1,
  or answer one JSON object with "stream": false; the last part carries done,
  done_reason, total/load/prompt_eval/eval durations in ns, prompt_eval_count (every
  prompt token the runner kept, cached or not) and eval_count (every sampled token,
  the end-of-generation one included, as Ollama's runner counts them).
- Errors before any output are an HTTP status with {"error": "..."}, with Ollama's own
  wording: 404 "model 'x' not found", 400 "model is required", 500 'option "x" must be
  of type float32' (options are type-checked as api.Options.FromMap does; unknown ones
  are ignored), the profile's overflow error. An error after output started is an
  {"error": "..."} line in the 200 answer (routes.go streamResponse).
- Options: Ollama's defaults, then the model's parameters, then the request's (a
  request's stop replaces the model's). Generation follows the runner: stop at an
  end-of-generation token, at a stop string (cut out of the text), or after num_predict
  tokens ("length"); text is held back while it may be the start of a stop string.
- The silent fit to num_ctx: with truncate unset or true, the oldest messages are
  dropped (system messages and the last message are kept) while the rendered prompt
  is longer than num_ctx, then the runner cuts the token list's front after num_keep
  tokens (the profile says how); with "truncate": false nothing is dropped and an
  over-long prompt gets the profile's 400. Context shift off ("shift": false, or in
  0.30 a runner loaded without it) ends an answer that fills num_ctx with done_reason
  "length".
  `understands_truncate = False` makes the double ignore both fields, as Ollama did
  before they existed.
- /api/create (from uploaded GGUF files or an existing model; template, parameters,
  licence, system and messages kept), HEAD/POST /api/blobs/sha256:… (the upload's
  digest is verified: 400 on a mismatch), /api/show (modelfile with the blob's FROM
  path, parameters printed as Ollama prints them, template, licence, model_info from
  the GGUF), /api/tags, /api/ps, /api/version.

Images (profile "ollama-0.30" only), as v0.30 takes a chat message's `images`
(base64): server/prompt.go imageTaggedMessages numbers the conversation's images and
writes each as "[img-N]", in the content's "[img]" in order, else before the text; the
model's template renders the text; llm/llama_server.go replaces each "[img-N]" with
llama-server's media marker and sends the images as multimodal_data, which libmtmd
splits into text and image chunks (<start_of_image>, the soft tokens, <end_of_image>).
The double runs that last part through the same libmtmd, with
borealis_local.runtime.mtmd's thin wrapper over llama-cpp-python's mtmd_cpp bindings
(one libmtmd binding in the project, not a second one here), on the model's projector
layer. Ollama's chat does not check the vision capability; llama-server without a
projector refuses multimodal data (its wording not checked: the double says so).
/api/show lists "vision" among the capabilities of a model with a projector layer
(server/images.go projectorCapabilities). Simplified: a prompt with images is evaluated
afresh (no prompt cache, and the cache is dropped after it) and never fitted by dropping
messages; images go as PNG or JPEG (Ollama also turns WebP into PNG).

Simplified: one model is loaded per GGUF with a fixed `n_ctx` (num_ctx is enforced
logically, so a num_ctx above `n_ctx` works while prompt and answer fit `n_ctx`);
requests are served one at a time (a lock around inference); "shift": true does not
really shift the KV cache; a reload is counted, not done; no registry pulls, tools,
thinking or embeddings.

Test hooks: `requests` records every request (method, path, JSON body);
`break_next_stream(n, cleanly=False)` ends the next streamed answer after n lines, by
closing the socket mid-chunk or (cleanly) by ending the stream without its done line;
`error_next_stream(n, message)` sends an {"error": message} line after n lines, as
Ollama does when the runner fails mid-answer; `fail_next(status, message)` answers the
next chat/generate with that error before any output; `reloads` counts runner reloads;
`same_machine = False` makes /api/show print blob paths that do not exist here, as a
server on another machine would; `evaluated_images` holds the SHA-256 of the last
prompt's images in the order libmtmd placed them.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import random
import re
import shutil
import socket
import tempfile
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

VERSION = "0.0.0-ollama-double"
PROFILES = ("ollama-0.24", "ollama-0.30")
# server/sched.go contextShiftSmallContextLimit (v0.30.0): shift defaults on below it.
CONTEXT_SHIFT_SMALL_CONTEXT_LIMIT = 8192
# Go's time.ParseDuration grammar: [-+] then one or more (decimal number, unit); or "0".
_GO_DURATION = re.compile(r"[-+]?(?:(?:\d+\.?\d*|\.\d+)(?:ns|us|µs|μs|ms|s|m|h))+|[-+]?0")
_GO_NUMBER_UNIT = re.compile(r"[-+]?(?:\d+\.?\d*|\.\d+)")

# api.DefaultOptions() (api/types.go); num_ctx is Ollama's default without a GPU.
DEFAULT_OPTIONS: dict[str, Any] = {
    "num_keep": 4,
    "seed": -1,
    "num_predict": -1,
    "top_k": 40,
    "top_p": 0.9,
    "min_p": 0.0,
    "temperature": 0.8,
    "repeat_penalty": 1.1,
    "stop": [],
    "num_ctx": 4096,
}
# The types api.Options.FromMap checks (the Modelfile's valid PARAMETERs, FACTS.md).
OPTION_TYPES = {
    "num_keep": int, "seed": int, "num_predict": int, "top_k": int, "top_p": float,
    "min_p": float, "typical_p": float, "repeat_last_n": int, "temperature": float,
    "repeat_penalty": float, "presence_penalty": float, "frequency_penalty": float,
    "stop": list, "num_ctx": int, "num_batch": int, "num_gpu": int, "main_gpu": int,
    "use_mmap": bool, "num_thread": int,
}  # fmt: skip
_GO_TYPE_NAMES = {int: "integer", float: "float32", bool: "boolean", list: "array"}
_DIGEST = re.compile(r"^sha256[:-]([0-9a-f]{64})$")
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._/-]*(:[A-Za-z0-9_][A-Za-z0-9._-]*)?$")
# Where Ollama keeps blobs on a Linux service install: not a path on this machine.
_REMOTE_BLOBS = "/usr/share/ollama/.ollama/models/blobs"


class HTTPFailure(Exception):
    """An answer of Ollama's shape: an HTTP status with {"error": message}."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status
        self.message = message


class _Cut(Exception):
    """The stream was cut on purpose (break_next_stream)."""


@dataclass
class Recorded:
    method: str
    path: str
    body: dict | None


@dataclass
class DoubleModel:
    """A model as /api/create stored it."""

    name: str
    digest: str  # "sha256:<hex>" of the GGUF blob
    template: str
    parameters: dict[str, Any]
    license: list[str]
    system: str = ""
    messages: list[dict] = field(default_factory=list)
    modified_at: str = ""
    projectors: list[str] = field(default_factory=list)  # "sha256:<hex>" of each projector


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _canonical(name: str) -> str:
    """Ollama's name: a missing tag is `latest`; names compare case-insensitively."""
    name = name.strip()
    if ":" not in name.rsplit("/", 1)[-1]:
        name += ":latest"
    return name.lower()


def _typed(key: str, value: Any, kind: type) -> Any:
    def wrong(what: str = "") -> HTTPFailure:
        what = what or f"type {_GO_TYPE_NAMES[kind]}"
        return HTTPFailure(500, f'option "{key}" must be of {what}')

    number = isinstance(value, (int, float)) and not isinstance(value, bool)
    if kind is int or kind is float:
        if not number:
            raise wrong()
        return kind(value)
    if kind is bool:
        if not isinstance(value, bool):
            raise wrong()
        return value
    if not isinstance(value, list):
        raise wrong()
    if not all(isinstance(item, str) for item in value):
        raise wrong("an array of strings")
    return list(value)


def merged_options(*layers: dict | None) -> dict[str, Any]:
    """Ollama's defaults, then each layer, type-checked as api.Options.FromMap does."""
    options = dict(DEFAULT_OPTIONS)
    for layer in layers:
        for key, value in (layer or {}).items():
            kind = OPTION_TYPES.get(key)
            if kind is not None and value is not None:  # unknown keys: Ollama warns, goes on
                options[key] = _typed(key, value, kind)
    return options


def _go_value(value: Any) -> str:
    """A value as Go's %#v prints what JSON decoded into an `any`."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return str(int(value)) if float(value).is_integer() else repr(float(value))
    return json.dumps(value, ensure_ascii=False)


class OllamaDouble:
    """A test double of the Ollama server (see the module doc); use as a context manager."""

    def __init__(
        self,
        renderer,
        *,
        home: Path | None = None,
        n_ctx: int = 2048,
        n_threads: int = 2,
        profile: str = "ollama-0.24",
    ):
        if profile not in PROFILES:
            raise ValueError(f"profile must be one of {PROFILES}, not {profile!r}")
        self.profile = profile
        self.renderer = renderer
        self.n_ctx = n_ctx
        self.n_threads = n_threads
        self._own_home = home is None
        self.home = Path(home or tempfile.mkdtemp(prefix="ollama-double-"))
        self.blobs = self.home / "blobs"
        self.blobs.mkdir(parents=True, exist_ok=True)
        self.models: dict[str, DoubleModel] = {}
        self.requests: list[Recorded] = []
        self.same_machine = True
        self.understands_truncate = True
        self._cut: tuple[int, bool] | None = None
        self._error_line: tuple[int, str] | None = None
        self._fail: tuple[int, str] | None = None
        self.reloads = 0
        self.evaluated_images: list[str] = []  # sha256 of each image, in prompt order
        self._runner: dict[str, tuple] = {}  # blob digest -> the loaded runner's settings
        self._state = threading.Lock()  # models, requests, cut
        self._inference = threading.Lock()  # one llama.cpp evaluation at a time
        self._loading = threading.Lock()
        self._loaded: dict[str, Any] = {}  # blob digest -> llama_cpp.Llama
        self._projectors: dict[str, Any] = {}  # projector digest -> runtime.mtmd.Projector
        self._info: dict[str, dict] = {}  # blob digest -> GGUF metadata
        self._server: ThreadingHTTPServer | None = None

    # -- lifecycle -------------------------------------------------------------------

    def __enter__(self) -> OllamaDouble:
        handler = type("Handler", (_Handler,), {"double": self})
        # A listen backlog that holds many concurrent clients (the default is 5).
        server_class = type("Server", (ThreadingHTTPServer,), {"request_queue_size": 128})
        self._server = server_class(("127.0.0.1", 0), handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc) -> None:
        self._server.shutdown()
        self._server.server_close()
        for projector in self._projectors.values():
            projector.close()
        self._projectors.clear()
        self._loaded.clear()
        if self._own_home:
            shutil.rmtree(self.home, ignore_errors=True)

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    # -- test hooks ------------------------------------------------------------------

    def requests_to(self, path: str) -> list[Recorded]:
        with self._state:
            return [r for r in self.requests if r.path == path]

    def break_next_stream(self, after_lines: int, *, cleanly: bool = False) -> None:
        """End the next streamed answer after `after_lines` lines: by closing the socket
        mid-stream, or (cleanly) by ending the stream without its done line."""
        with self._state:
            self._cut = (after_lines, cleanly)

    def _take_cut(self) -> tuple[int, bool] | None:
        with self._state:
            cut, self._cut = self._cut, None
            return cut

    def error_next_stream(self, after_lines: int, message: str) -> None:
        """After `after_lines` lines of the next streamed answer, send {"error": message}
        and end it, as Ollama does when the runner fails mid-answer (status stays 200)."""
        with self._state:
            self._error_line = (after_lines, message)

    def fail_next(self, status: int, message: str) -> None:
        """Answer the next chat or generate request with `status` and {"error": message}."""
        with self._state:
            self._fail = (status, message)

    def _take(self, name: str):
        with self._state:
            value = getattr(self, name)
            setattr(self, name, None)
            return value

    # -- routing ---------------------------------------------------------------------

    def handle(self, h: _Handler, method: str) -> None:
        path = urlsplit(h.path).path
        routes = {
            ("GET", "/"): lambda: h.send_text(200, "Ollama is running"),
            ("HEAD", "/"): lambda: h.send_text(200, "Ollama is running"),
            ("GET", "/api/version"): lambda: h.send_json(200, {"version": VERSION}),
            ("HEAD", "/api/version"): lambda: h.send_json(200, {"version": VERSION}),
            ("GET", "/api/tags"): lambda: h.send_json(200, self._tags()),
            ("HEAD", "/api/tags"): lambda: h.send_json(200, self._tags()),
            ("GET", "/api/ps"): lambda: h.send_json(200, self._ps()),
            ("POST", "/api/show"): lambda: self._show(h, self._body(h, method, path)),
            ("POST", "/api/create"): lambda: self._create(h, self._body(h, method, path)),
            ("POST", "/api/chat"): lambda: self._chat(h, self._body(h, method, path)),
            ("POST", "/api/generate"): lambda: self._generate(h, self._body(h, method, path)),
        }
        if path.startswith("/api/blobs/") and method in ("HEAD", "POST"):
            self._record(method, path, None)
            return self._blob(h, method, path.removeprefix("/api/blobs/"))
        route = routes.get((method, path))
        if route is None:
            self._record(method, path, None)
            h.close_connection = True
            known = any(p == path for _, p in routes)
            return (
                h.send_text(405, "405 method not allowed")
                if known
                else h.send_text(404, "404 page not found")
            )
        if method != "POST":
            self._record(method, path, None)
        route()

    def _record(self, method: str, path: str, body: dict | None) -> None:
        with self._state:
            self.requests.append(Recorded(method, path, body))

    def _body(self, h: _Handler, method: str, path: str) -> dict:
        raw = b"".join(h.body_chunks())
        try:
            body = json.loads(raw) if raw else None
        except ValueError as error:
            self._record(method, path, None)
            raise HTTPFailure(400, str(error)) from None
        self._record(method, path, body)
        if body is None:
            raise HTTPFailure(400, "missing request body")
        if not isinstance(body, dict):
            raise HTTPFailure(400, "json: cannot unmarshal into a request object")
        return body

    def _model(self, name: Any) -> DoubleModel | None:
        with self._state:
            return self.models.get(_canonical(name)) if isinstance(name, str) else None

    # -- listing ---------------------------------------------------------------------

    def _details(self, model: DoubleModel) -> dict:
        info = self._gguf_info(model.digest)
        arch = info.get("general.architecture", "")
        return {
            "parent_model": "",
            "format": "gguf",
            "family": arch,
            "families": [arch],
            "parameter_size": "",
            "quantization_level": info.get("_file_type", ""),
        }

    def _tags(self) -> dict:
        with self._state:
            models = list(self.models.values())
        return {"models": [
            {"name": m.name, "model": m.name, "modified_at": m.modified_at,
             "size": self._blob_path(m.digest).stat().st_size,
             "digest": hashlib.sha256(m.name.encode()).hexdigest(),
             "details": self._details(m)}
            for m in models
        ]}  # fmt: skip

    def _ps(self) -> dict:
        with self._state:
            models = [m for m in self.models.values() if m.digest in self._loaded]
        return {"models": [
            {"name": m.name, "model": m.name, "size": self._blob_path(m.digest).stat().st_size,
             "digest": m.digest.removeprefix("sha256:"), "details": self._details(m),
             "expires_at": _now(), "size_vram": 0,
             "context_length": self._runner.get(m.digest, (self.n_ctx,))[0]}
            for m in models
        ]}  # fmt: skip

    def _show(self, h: _Handler, body: dict) -> None:
        name = body.get("model") or body.get("name")
        if not name:
            raise HTTPFailure(400, "model is required")
        model = self._model(name)
        if model is None:
            raise HTTPFailure(404, f"model '{name}' not found")
        info = {k: v for k, v in self._gguf_info(model.digest).items() if not k.startswith("_")}
        h.send_json(200, {
            "license": "\n".join(model.license),
            "modelfile": self._modelfile(model),
            "parameters": self._parameters_text(model),
            "template": model.template,
            "system": model.system,
            "details": self._details(model),
            "model_info": info,
            "capabilities": ["completion"] + (["vision"] if model.projectors else []),
            "modified_at": model.modified_at,
        })  # fmt: skip

    def _parameters_text(self, model: DoubleModel) -> str:
        lines = []
        for key, value in model.parameters.items():
            for item in value if isinstance(value, list) else [value]:
                lines.append(f"{key:<30} {_go_value(item)}")
        return "\n".join(lines)

    def _modelfile(self, model: DoubleModel) -> str:
        hexdigest = model.digest.removeprefix("sha256:")
        blobs = self.blobs if self.same_machine else Path(_REMOTE_BLOBS)
        lines = [
            '# Modelfile generated by "ollama show"',
            "# To build a new Modelfile based on this, replace FROM with:",
            f"# FROM {model.name}",
            "",
            f"FROM {blobs / ('sha256-' + hexdigest)}",
        ]
        # server/images.go Model.String: one more FROM per projector, after the model's.
        for projector in model.projectors:
            lines.append(f"FROM {blobs / ('sha256-' + projector.removeprefix('sha256:'))}")
        lines += [
            f'TEMPLATE """{model.template}"""',
        ]
        if model.system:
            lines.append(f'SYSTEM """{model.system}"""')
        for key, value in model.parameters.items():
            for item in value if isinstance(value, list) else [value]:
                lines.append(f"PARAMETER {key} {item}")
        lines += [f'LICENSE """{text}"""' for text in model.license]
        return "\n".join(lines) + "\n"

    def _is_projector(self, digest: str) -> bool:
        """server/create.go ggufLayers (v0.30.0): general.type "projector", or a vision
        block count without a text one, makes the layer a projector."""
        info = self._gguf_info(digest)
        arch = info.get("general.architecture", "")
        vision = info.get(f"{arch}.vision.block_count", 0)
        return info.get("general.type") == "projector" or (
            not info.get(f"{arch}.block_count") and bool(vision)
        )

    def _gguf_info(self, digest: str) -> dict:
        """model_info as Ollama shows it: the GGUF's scalar metadata (read once)."""
        from borealis_local.errors import InvalidModelFileError
        from borealis_local.runtime.gguf_check import check_gguf

        if digest not in self._info:
            try:
                info = check_gguf(self._blob_path(digest), architectures=("gemma3", "clip"))
            except InvalidModelFileError:  # not a Gemma 3: Ollama would still show it
                self._info[digest] = {}
            else:
                self._info[digest] = {**info.metadata, "_file_type": info.file_type or ""}
        return self._info[digest]

    # -- blobs -----------------------------------------------------------------------

    def _blob_path(self, digest: str) -> Path:
        match = _DIGEST.match(digest)
        if match is None:
            raise HTTPFailure(400, "invalid digest format")
        return self.blobs / f"sha256-{match.group(1)}"

    def _blob(self, h: _Handler, method: str, digest: str) -> None:
        path = self._blob_path(digest)
        if method == "HEAD":
            if path.exists():
                return h.send_status(200)
            return h.send_json(404, {"error": f'blob "{digest}" not found'})
        if path.exists():
            for _ in h.body_chunks():  # Ollama answers at once; drain for a clean connection
                pass
            return h.send_status(200)
        sha = hashlib.sha256()
        with tempfile.NamedTemporaryFile(dir=self.blobs, delete=False) as partial:
            for piece in h.body_chunks():
                sha.update(piece)
                partial.write(piece)
        actual = f"sha256:{sha.hexdigest()}"
        if actual != digest.replace("-", ":", 1):
            Path(partial.name).unlink()
            raise HTTPFailure(400, f'digest mismatch, expected "{digest}", got "{actual}"')
        Path(partial.name).replace(path)
        h.send_status(201)

    # -- create ----------------------------------------------------------------------

    def _create(self, h: _Handler, body: dict) -> None:
        name = body.get("model") or body.get("name") or ""
        if not _NAME.match(name):
            raise HTTPFailure(400, "invalid model name")
        parameters = body.get("parameters") or {}
        licence = body.get("license") or []
        licence = [licence] if isinstance(licence, str) else licence
        if not all(isinstance(text, str) for text in licence):
            raise HTTPFailure(400, "license must be a string or a list of strings")
        base, steps = self._create_base(body)
        template = body.get("template") or base.template
        if body.get("template"):
            self._check_template(template)
        out = _Responder(h, streamed=body.get("stream") is not False, cut=None)
        for status in steps:
            out.line({"status": status})
        model = DoubleModel(
            name=name.strip(), digest=base.digest, template=template,
            # server/create.go setLicense appends a layer: the base model's licences stay.
            parameters={**base.parameters, **parameters}, license=base.license + licence,
            system=body.get("system") or base.system,
            messages=body.get("messages") or base.messages, modified_at=_now(),
            projectors=list(base.projectors),
        )  # fmt: skip
        for layer in (template, json.dumps(model.parameters), *model.license):
            out.line({"status": f"creating new layer sha256:{_sha(layer)}"})
        out.line({"status": "writing manifest"})
        with self._state:
            self.models[_canonical(name)] = model
        out.line({"status": "success"})
        out.finish()

    def _create_base(self, body: dict) -> tuple[DoubleModel, list[str]]:
        files, source = body.get("files"), body.get("from")
        if files:
            models, projectors = [], []
            for digest in files.values():
                path = self._blob_path(digest)
                if not path.exists():
                    raise HTTPFailure(400, f"open {path}: no such file or directory")
                with path.open("rb") as blob:
                    if blob.read(4) != b"GGUF":
                        raise HTTPFailure(400, "supplied file was not in GGUF format")
                digest = digest.replace("-", ":", 1)
                (projectors if self._is_projector(digest) else models).append(digest)
            if len(models) != 1:
                raise HTTPFailure(400, "the test double takes one model GGUF (and projectors)")
            base = DoubleModel("", models[0], "{{ .Prompt }}", {}, [], projectors=projectors)
            steps = ["parsing GGUF"] + [f"using existing layer {d}" for d in models + projectors]
            return base, steps
        if source:
            base = self._model(source)
            if base is None:  # Ollama would pull it; the double has no registry
                raise HTTPFailure(
                    500, f"pull model manifest: {source}: the test double cannot reach a registry"
                )
            return base, [f"using existing layer {base.digest}"]
        raise HTTPFailure(400, "neither 'from' or 'files' was specified")

    def _check_template(self, template: str) -> None:
        try:
            self.renderer.render(template, [[{"role": "user", "content": "x"}]])
        except RuntimeError as error:
            raise HTTPFailure(400, f"template error: {error}") from None

    # -- inference -------------------------------------------------------------------

    def _chat(self, h: _Handler, body: dict) -> None:
        started = time.perf_counter()
        model, options, grammar = self._inference_setup(body)
        messages = [
            {"role": m.get("role", ""), "content": m.get("content") or ""}
            for m in body.get("messages") or []
        ]
        if not messages:
            return h.send_json(200, self._part(body, "chat", "", done_reason="load"))
        media = self._image_tagged(messages, body.get("messages"))
        messages = model.messages + messages
        if messages[0]["role"] != "system" and model.system:
            messages = [{"role": "system", "content": model.system}] + messages
        self._infer(h, body, "chat", model, messages, options, grammar, started, media)

    def _image_tagged(self, messages: list[dict], sent: list[dict]) -> list[bytes]:
        """server/prompt.go imageTaggedMessages: each image of the conversation, in
        order, as "[img-N]" in its message's "[img]" (else before its text); returns the
        images' bytes, N-th at N."""
        media: list[bytes] = []
        for message, original in zip(messages, sent, strict=True):
            images = original.get("images") or []
            if images and self.profile != "ollama-0.30":
                raise HTTPFailure(500, "the test double takes images in profile ollama-0.30")
            prefix, content = "", message["content"]
            for image in images:
                try:
                    media.append(base64.b64decode(image, validate=True))
                except (binascii.Error, TypeError):
                    raise HTTPFailure(400, "illegal base64 data in images") from None
                tag = f"[img-{len(media) - 1}]"
                if "[img]" in content:
                    content = content.replace("[img]", tag, 1)
                else:
                    prefix += tag
            message["content"] = prefix + content
        return media

    def _generate(self, h: _Handler, body: dict) -> None:
        started = time.perf_counter()
        raw = bool(body.get("raw"))
        if raw and (body.get("template") or body.get("system") or body.get("context")):
            raise HTTPFailure(400, "raw mode does not support template, system, or context")
        if body.get("template") or body.get("suffix"):
            raise HTTPFailure(500, "the test double renders model templates only")
        model, options, grammar = self._inference_setup(body)
        prompt = body.get("prompt") or ""
        if not prompt:
            return h.send_json(200, self._part(body, "generate", "", done_reason="load"))
        if raw:
            return self._infer(h, body, "generate", model, prompt, options, grammar, started)
        system = body.get("system") or model.system
        messages = ([{"role": "system", "content": system}] if system else []) + model.messages
        messages.append({"role": "user", "content": prompt})
        self._infer(h, body, "generate", model, messages, options, grammar, started)

    def _inference_setup(self, body: dict):
        if "keep_alive" in body:  # decoded with the body, before the model is looked up
            _check_keep_alive(body["keep_alive"])
        name = body.get("model")
        if not isinstance(name, str) or not _NAME.match(name):
            raise HTTPFailure(400, "model is required")
        model = self._model(name)
        if model is None:
            raise HTTPFailure(404, f"model '{name}' not found")
        if not isinstance(body.get("options") or {}, dict):
            raise HTTPFailure(400, "json: cannot unmarshal options into a map")
        options = merged_options(model.parameters, body.get("options"))
        return model, options, self._grammar(body.get("format"))

    def _grammar(self, fmt: Any):
        import llama_cpp
        from llama_cpp import llama_grammar

        if fmt in (None, "", "null"):
            return None
        if fmt == "json":
            return llama_cpp.LlamaGrammar.from_string(llama_grammar.JSON_GBNF, verbose=False)
        if isinstance(fmt, dict):
            return llama_cpp.LlamaGrammar.from_json_schema(json.dumps(fmt), verbose=False)
        raise HTTPFailure(
            400, f'invalid format: {json.dumps(fmt)}; expected "json" or a valid JSON schema'
        )

    def _infer(self, h, body, kind, model, prompt_or_messages, options, grammar, started,
               media=()):
        failure = self._take("_fail")
        if failure is not None:
            raise HTTPFailure(*failure)
        truncate, shift = True, None
        if self.understands_truncate:
            truncate = body.get("truncate") is not False
            shift = body.get("shift") if isinstance(body.get("shift"), bool) else None
        llm = self._llama(model.digest)
        context_shift, cache = self._schedule(model.digest, llm, options, shift)
        loaded = time.perf_counter()
        candidates = None
        if not isinstance(prompt_or_messages, str):
            candidates = self._candidate_prompts(model, prompt_or_messages, truncate and not media)
        out = _Responder(
            h, streamed=body.get("stream") is not False, cut=self._take_cut(),
            error_line=self._take("_error_line"),
        )  # fmt: skip
        with self._inference:
            if media:
                tokens = self._evaluate_with_images(model, llm, candidates[0], media, options)
                cache = True  # the prompt is in the KV cache, all but its last token
            elif candidates is None:
                prompt = prompt_or_messages
            else:
                prompt = _first_that_fits(llm, candidates, options["num_ctx"])
            if not media:
                tokens = self._runner_inputs(llm, prompt, options, truncate)
            limit = self._room(tokens, options, context_shift)
            run = _Run(llm, tokens, options, grammar, limit, cache=cache)
            texts = run.texts()
            try:
                for text in texts:
                    out.line(self._part(body, kind, text))
            finally:
                texts.close()
                if media:  # llama-cpp-python's record of the cache lacks the images
                    run.evaluated = len(tokens)
                    llm.reset()
        final = self._part(body, kind, "", done_reason=run.done_reason)
        final.update(
            total_duration=int((time.perf_counter() - started) * 1e9),
            load_duration=int((loaded - started) * 1e9),
            # 0.24's runners count every prompt token kept; 0.30 reports llama-server's
            # timings.prompt_n (llm/llama_server.go): the tokens evaluated, not the cached.
            prompt_eval_count=run.evaluated if cache else len(tokens),
            prompt_eval_duration=int(run.prompt_ms * 1e6),
            eval_count=run.predicted,
            eval_duration=int(run.eval_ms * 1e6),
        )
        if kind == "generate" and not body.get("raw"):
            final["context"] = tokens + run.generated
        out.last(final)

    def _schedule(self, digest: str, llm, options: dict, shift: bool | None):
        """The scheduler's part (server/sched.go): the runner's load-time settings, a
        reload when a request's differ; and whether the prompt cache is used. Returns
        (context shift on, cache the prompt)."""
        num_ctx = options["num_ctx"]
        if self.profile == "ollama-0.24":
            # v0.24.0: shift is a per-request option of the runner; needsReload compares
            # the runner options, num_ctx among them. The double caches no prompts.
            settings, context_shift, cache = (num_ctx,), shift is not False, False
        else:
            # v0.30.0 resolveContextShift: the request's shift, else on below 8192.
            if shift is None:
                context_shift = 0 < num_ctx < CONTEXT_SHIFT_SMALL_CONTEXT_LIMIT
            else:
                context_shift = shift
            settings = (num_ctx, context_shift)
            cache = shift is not False  # CachePrompt: req.Shift (nil counts as true)
        with self._state:
            previous = self._runner.get(digest)
            self._runner[digest] = settings
            if previous is not None and previous != settings:
                self.reloads += 1
        if previous is not None and previous != settings:
            with self._inference:
                llm.reset()  # a new runner starts with an empty cache
        return context_shift, cache

    def _evaluate_with_images(self, model, llm, prompt: str, media: list[bytes],
                              options: dict) -> list[int]:
        """v0.30 with images: the "[img-N]" tags become llama-server's media marker, and
        libmtmd's chunks are evaluated from an empty cache, all but the last token (text:
        the template ends with the model's turn). Returns llama-cpp-python's record of
        the cache (its entries at image positions are not tokens) and the last token."""
        from borealis_local.errors import BorealisError
        from borealis_local.runtime.images import as_image
        from borealis_local.runtime.mtmd import ImageChunk

        if not model.projectors:
            raise HTTPFailure(500, "llama-server: this model has no projector for images "
                              "(the test double's words; llama-server's not checked)")
        projector = self._projector(model.projectors[0], llm)
        for n in range(len(media)):
            prompt = prompt.replace(f"[img-{n}]", projector.marker, 1)
        try:
            images = [as_image(data) for data in media]
            chunks = projector.tokenize("<bos>" + prompt, images)  # llama-server adds BOS
        except BorealisError as error:
            raise HTTPFailure(400, f"llama-server: {error}") from None
        with chunks:
            if len(chunks) >= options["num_ctx"]:
                raise HTTPFailure(400, llama_server_overflow(len(chunks), options["num_ctx"]))
            if len(chunks) > self.n_ctx:
                raise HTTPFailure(500, f"the test double loads models with a {self.n_ctx}-"
                                  f"token context; this prompt has {len(chunks)} tokens")
            llm.reset()
            self.evaluated_images = [c.digest for c in chunks.chunks if isinstance(c, ImageChunk)]
            for i, chunk in enumerate(chunks.chunks):
                if isinstance(chunk, ImageChunk):
                    llm.n_tokens = projector.evaluate(chunk, llm.n_tokens, llm.n_batch)[0]
                    continue
                todo = chunk.tokens[:-1] if i == len(chunks.chunks) - 1 else chunk.tokens
                if todo:
                    llm.eval(todo)
            last = chunks.chunks[-1].tokens[-1]
        return list(llm._input_ids[: llm.n_tokens]) + [last]

    def _projector(self, digest: str, llm):
        from borealis_local.runtime.mtmd import Projector

        with self._loading:
            if digest not in self._projectors:
                self._projectors[digest] = Projector(
                    self._blob_path(digest), llm, use_gpu=False, flash_attn=False,
                    n_threads=self.n_threads,
                )  # fmt: skip
            return self._projectors[digest]

    def _runner_inputs(self, llm, prompt: str, options: dict, truncate: bool) -> list[int]:
        """The tokens the runner evaluates, or the profile's refusal."""
        tokens = _tokenize(llm, prompt)
        num_ctx = options["num_ctx"]
        if self.profile == "ollama-0.24":
            # v0.24.0 runners' NewSequence: more than num_ctx tokens are cut after the
            # first num_keep, or refused under truncate=false.
            if len(tokens) <= num_ctx:
                return tokens
            if not truncate:
                raise HTTPFailure(400, "the input length exceeds the context length")
            return _cut_front(tokens, options["num_keep"], num_ctx)
        # v0.30.0 completionPromptForRequest: with truncation on, Ollama itself cuts to
        # num_ctx - 1 (unless the prompt has fewer characters than num_ctx)...
        if truncate and num_ctx > 1 and len(prompt) >= num_ctx and len(tokens) > num_ctx - 1:
            tokens = _cut_front(tokens, options["num_keep"], num_ctx - 1)
        # ...and llama-server refuses a prompt that fills its slot, its body passed on.
        if len(tokens) >= num_ctx:
            raise HTTPFailure(400, llama_server_overflow(len(tokens), num_ctx))
        return tokens

    def _room(self, tokens: list[int], options: dict, shift: bool) -> int:
        """How many tokens may be generated: num_predict; with context shift off, no more
        than num_ctx holds; and never more than the loaded model's context holds."""
        if len(tokens) > self.n_ctx:
            raise HTTPFailure(
                500,
                f"the test double loads models with a {self.n_ctx}-token "
                f"context; this prompt has {len(tokens)} tokens",
            )
        limit = options["num_predict"] if options["num_predict"] > 0 else self.n_ctx
        if not shift:
            limit = min(limit, options["num_ctx"] - len(tokens))
        return min(limit, self.n_ctx - len(tokens))

    def _candidate_prompts(self, model, messages, truncate) -> list[str]:
        """server/prompt.go chatPrompt: from all messages, then dropping the oldest one by
        one (system messages stay, the last message always stays)."""
        if not truncate:
            return self._render(model, [messages])
        candidates = []
        for start in range(len(messages)):
            system = [m for m in messages[:start] if m["role"] == "system"]
            candidates.append(system + messages[start:])
        return self._render(model, candidates)

    def _render(self, model, conversations) -> list[str]:
        try:
            return self.renderer.render(model.template, conversations)
        except RuntimeError as error:
            raise HTTPFailure(500, f"template: {error}") from None

    def _part(self, body: dict, kind: str, text: str, done_reason: str | None = None) -> dict:
        part: dict[str, Any] = {"model": body.get("model"), "created_at": _now()}
        if kind == "chat":
            part["message"] = {"role": "assistant", "content": text}
        else:
            part["response"] = text
        part["done"] = done_reason is not None
        if done_reason is not None:
            part["done_reason"] = done_reason
        return part

    def _llama(self, digest: str):
        import llama_cpp

        with self._loading:
            if digest not in self._loaded:
                llm = llama_cpp.Llama(
                    model_path=str(self._blob_path(digest)), n_ctx=self.n_ctx,
                    n_threads=self.n_threads, n_batch=512, verbose=False,
                )  # fmt: skip
                self._loaded[digest] = llm
            return self._loaded[digest]


def _sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def _tokenize(llm, text: str) -> list[int]:
    """As Ollama's runner does: BOS added, special tokens parsed."""
    return llm.tokenize(text.encode(), add_bos=True, special=True)


def _first_that_fits(llm, candidates: list[str], num_ctx: int) -> str:
    for prompt in candidates:
        if len(_tokenize(llm, prompt)) <= num_ctx:
            return prompt
    return candidates[-1]  # the last message alone: the runner cuts it below


def _cut_front(tokens: list[int], num_keep: int, limit: int) -> list[int]:
    """Keep the first num_keep tokens, drop the oldest after them to fit `limit`."""
    keep = min(num_keep, limit - 1) if num_keep >= 0 else limit
    discard = len(tokens) - limit
    return tokens[:keep] + tokens[keep + discard :]


def llama_server_overflow(n_prompt: int, n_ctx: int) -> str:
    """llama-server's error body for a prompt that does not fit its slot, as Ollama v0.30+
    passes it on as its message (a JSON text inside Ollama's {"error": ...})."""
    return json.dumps({"error": {
        "code": 400,
        "message": f"request ({n_prompt} tokens) exceeds the available context size "
                   f"({n_ctx} tokens), try increasing it",
        "type": "exceed_context_size_error",
        "n_prompt_tokens": n_prompt,
        "n_ctx": n_ctx,
    }})  # fmt: skip


def go_parse_duration(text: str) -> float:
    """Seconds, as Go's time.ParseDuration reads `text`; ValueError with Go's message."""
    if not _GO_DURATION.fullmatch(text):
        if _GO_NUMBER_UNIT.fullmatch(text):
            raise ValueError(f'time: missing unit in duration "{text}"')
        match = re.match(r"[-+]?(?:\d+\.?\d*|\.\d+)([^\d.]+)", text)
        if match and match.group(1) not in ("ns", "us", "µs", "μs", "ms", "s", "m", "h"):
            raise ValueError(f'time: unknown unit "{match.group(1)}" in duration "{text}"')
        raise ValueError(f'time: invalid duration "{text}"')
    units = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "μs": 1e-6, "ms": 1e-3, "s": 1, "m": 60,
             "h": 3600}  # fmt: skip
    sign = -1 if text.startswith("-") else 1
    pairs = re.findall(r"(\d+\.?\d*|\.\d+)(ns|us|µs|μs|ms|s|m|h)", text)
    return sign * sum(float(number) * units[unit] for number, unit in pairs)


def _check_keep_alive(value: Any) -> None:
    """api.Duration.UnmarshalJSON (api/types.go, v0.24.0 and v0.30.0): a JSON number is
    seconds; a string goes through time.ParseDuration; other types are refused."""
    if value is None or (isinstance(value, (int, float)) and not isinstance(value, bool)):
        return
    if isinstance(value, str):
        try:
            go_parse_duration(value)
        except ValueError as error:
            raise HTTPFailure(400, str(error)) from None
        return
    go_type = {bool: "bool", list: "[]interface {}", dict: "map[string]interface {}"}
    raise HTTPFailure(400, f"Unsupported type: '{go_type.get(type(value), type(value))}'")


class _Run:
    """The runner's generation loop over llama-cpp-python's token generator: stop at an
    end-of-generation token, at a stop string, or after `limit` tokens; hold back text
    that may be the start of a stop string, or an incomplete UTF-8 character."""

    def __init__(self, llm, tokens, options, grammar, limit: int, *, cache: bool = False):
        self.llm, self.tokens, self.options, self.grammar = llm, tokens, options, grammar
        self.limit = limit
        self.cache = cache
        self.evaluated = len(tokens)  # prompt tokens evaluated (not taken from the cache)
        self.predicted = 0
        self.generated: list[int] = []
        self.done_reason = "length"
        self.prompt_ms = self.eval_ms = 0.0

    def texts(self):
        """Yield the answer's text as it comes; counts and timings are set at the end."""
        import llama_cpp

        llm, options = self.llm, self.options
        if self.limit <= 0:
            return
        stops = options["stop"]
        seed = options["seed"] if options["seed"] >= 0 else random.randrange(2**31)
        llm.set_seed(seed)
        # Profile 0.24: evaluate every prompt afresh (reusing a cached prefix changes
        # llama.cpp's batches, and with them the last bits of the logits, so answers
        # depend on the requests before). Profile 0.30 with cache_prompt: as llama-server's
        # slot, keep the longest prefix shared with the last request (always evaluating
        # at least one token), so answers DO depend on what came before.
        feed = self._reuse_prefix() if self.cache else None
        if feed is None:
            llm.reset()
            feed = self.tokens
        self.evaluated = len(feed)
        llama_cpp.llama_perf_context_reset(llm._ctx.ctx)
        pending = b""
        tokens = llm.generate(
            feed, top_k=options["top_k"], top_p=options["top_p"],
            min_p=options["min_p"], temp=options["temperature"],
            repeat_penalty=options["repeat_penalty"], grammar=self.grammar, reset=False,
        )  # fmt: skip
        try:
            for token in tokens:
                self.predicted += 1
                if llama_cpp.llama_vocab_is_eog(llm._model.vocab, token):
                    self.done_reason = "stop"
                    break
                self.generated.append(token)
                pending += llm.detokenize([token], special=True)
                text = _complete_utf8(pending)
                if text is not None:
                    cut = _find_stop(text, stops)
                    if cut is not None:
                        self.done_reason, pending = "stop", b""
                        if text[:cut]:
                            yield text[:cut]
                        break
                    if not _ends_with_stop_prefix(text, stops):
                        pending = b""
                        if text:
                            yield text
                if self.predicted >= self.limit:
                    break
            if pending:
                yield pending.decode("utf-8", errors="ignore")
        finally:
            tokens.close()
            perf = llama_cpp.llama_perf_context(llm._ctx.ctx)
            self.prompt_ms, self.eval_ms = perf.t_p_eval_ms, perf.t_eval_ms

    def _reuse_prefix(self) -> list[int] | None:
        """The prompt's tokens after the prefix the KV cache already holds, or None when
        nothing can be reused (the cache is then cleared)."""
        llm, prompt = self.llm, self.tokens
        held = list(llm._input_ids[: llm.n_tokens])
        prefix = 0
        for a, b in zip(held, prompt[:-1], strict=False):
            if a != b:
                break
            prefix += 1
        if prefix == 0 or not llm._ctx.kv_cache_seq_rm(-1, prefix, -1):
            return None
        llm.n_tokens = prefix
        return prompt[prefix:]


def _complete_utf8(data: bytes) -> str | None:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return None


def _find_stop(text: str, stops: list[str]) -> int | None:
    found = [text.index(stop) for stop in stops if stop in text]
    return min(found) if found else None


def _ends_with_stop_prefix(text: str, stops: list[str]) -> bool:
    return any(text.endswith(stop[:n]) for stop in stops for n in range(1, len(stop)))


class _Responder:
    """Writes an answer as Ollama does: NDJSON lines over chunked transfer, or, with
    "stream": false, one JSON object at the end; and cuts it when told to."""

    def __init__(
        self,
        h: _Handler,
        *,
        streamed: bool,
        cut: tuple[int, bool] | None,
        error_line: tuple[int, str] | None = None,
    ):
        self.h, self.streamed, self.cut = h, streamed, cut
        self.error_line = error_line
        self.started = False
        self.sent = 0
        self.text: list[str] = []
        self.latest: dict | None = None

    def line(self, obj: dict) -> None:
        if not self.streamed:
            self.text.append(obj.get("response") or obj.get("message", {}).get("content", ""))
            self.latest = obj
            return
        if not self.started:
            self.started = True
            self.h.send_response(200)
            self.h.send_header("Content-Type", "application/x-ndjson")
            self.h.send_header("Transfer-Encoding", "chunked")
            self.h.end_headers()
        self.h.write_chunk((json.dumps(obj) + "\n").encode())
        self.sent += 1
        if self.cut is not None and self.sent >= self.cut[0]:
            self._cut_now(cleanly=self.cut[1])
        if self.error_line is not None and self.sent >= self.error_line[0]:
            self.h.close_connection = True
            self.error(self.error_line[1])  # routes.go streamResponse: a line, then the end
            raise _Cut

    def _cut_now(self, *, cleanly: bool) -> None:
        self.h.close_connection = True
        if cleanly:
            self.h.write_chunk(b"")
        else:
            self.h.connection.shutdown(socket.SHUT_RDWR)
        raise _Cut

    def last(self, obj: dict) -> None:
        if not self.streamed:
            text = "".join(self.text)
            if "message" in obj:
                obj["message"]["content"] = text
            elif "response" in obj:
                obj["response"] = text
            self.h.send_json(200, obj)
            return
        self.line(obj)
        self.finish()

    def finish(self) -> None:
        if not self.streamed:
            self.h.send_json(200, self.latest or {})
        elif self.started:
            self.h.write_chunk(b"")

    def error(self, message: str) -> None:
        """An error after output started: Ollama sends it as a line."""
        self.h.write_chunk((json.dumps({"error": message}) + "\n").encode())
        self.h.write_chunk(b"")


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "OllamaDouble"
    double: OllamaDouble

    def log_message(self, format, *args) -> None:  # quiet in tests
        pass

    def do_GET(self):
        self._serve("GET")

    def do_HEAD(self):
        self._serve("HEAD")

    def do_POST(self):
        self._serve("POST")

    def do_DELETE(self):
        self._serve("DELETE")

    def _serve(self, method: str) -> None:
        self._headers_sent = False
        try:
            self.double.handle(self, method)
        except _Cut:
            pass
        except HTTPFailure as failure:
            self._fail(failure.status, failure.message)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True
        except Exception as error:  # a bug in the double: say so, as Ollama says a 500
            self._fail(500, f"test double: {type(error).__name__}: {error}")

    def _fail(self, status: int, message: str) -> None:
        # The body may be unread: do not reuse this connection.
        self.close_connection = True
        if self._headers_sent:
            _Responder(self, streamed=True, cut=None).error(message)
        else:
            self.send_json(status, {"error": message})

    def end_headers(self) -> None:
        self._headers_sent = True
        super().end_headers()

    def body_chunks(self):
        """The request body in pieces, sent with Content-Length or chunked."""
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    return
                yield self.rfile.read(size)
                self.rfile.readline()
        remaining = int(self.headers.get("Content-Length") or 0)
        while remaining > 0:
            piece = self.rfile.read(min(remaining, 1 << 20))
            if not piece:
                return
            remaining -= len(piece)
            yield piece

    def write_chunk(self, data: bytes) -> None:
        self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
        self.wfile.flush()

    def send_json(self, status: int, obj: dict) -> None:
        self._send(status, json.dumps(obj).encode(), "application/json; charset=utf-8")

    def send_text(self, status: int, text: str) -> None:
        self._send(status, text.encode(), "text/plain; charset=utf-8")

    def send_status(self, status: int) -> None:
        self._send(status, b"", None)

    def _send(self, status: int, data: bytes, content_type: str | None) -> None:
        self.send_response(status)
        if self.close_connection:  # say so: a client must not reuse this connection
            self.send_header("Connection", "close")
        if content_type:
            self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)
