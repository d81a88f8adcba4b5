"""llama.cpp in-process through llama-cpp-python: the embedded default backend."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from borealis_local.catalog import SAMPLING, parse_name
from borealis_local.errors import (
    BackendError,
    ContextOverflowError,
    InvalidRequestError,
    UnknownModelError,
)
from borealis_local.runtime import llama_log, resolve
from borealis_local.runtime.base import (
    Backend,
    Chunk,
    Options,
    Request,
    Timings,
    Usage,
    normalise_messages,
)
from borealis_local.runtime.embeddings import Embedder
from borealis_local.runtime.kind import BenchTarget, RuntimeKind, Settings
from borealis_local.templates import render

# llama-cpp-python's own defaults (min_p 0.05, repeat_penalty 1.1, top_k 40) are not
# llama.cpp's nor Gemma's: we send Gemma 3's sampling and neutral min_p / penalty.
NEUTRAL = {"min_p": 0.0, "repeat_penalty": 1.0}
DEFAULT_N_CTX = 4096


def gpu_backend() -> str | None:
    """The GPU backend this llama.cpp build was compiled with, if any."""
    import llama_cpp

    if not llama_cpp.llama_supports_gpu_offload():
        return None
    info = llama_cpp.llama_print_system_info().decode(errors="replace")
    for name in ("CUDA", "Metal", "Vulkan", "ROCm", "HIP", "SYCL", "OpenCL"):
        if name.lower() in info.lower():
            return name
    return "GPU"


class LlamaCppBackend(Backend):
    """A local GGUF in llama.cpp, with the Borealis Jinja template.

    One model, one context: calls are serialised with a lock (async callers wait in a
    worker thread, never on the event loop). llama-cpp-python keeps the previous
    call's tokens in the KV cache and evaluates only what differs, so a shared prompt
    prefix (a system text, the same documents) is not processed twice.
    """

    kind = "llama.cpp"

    def __init__(
        self,
        model_path: str | Path,
        *,
        options: Options | None = None,
        n_ctx: int | None = None,
        n_gpu_layers: int | None = None,
        flash_attn: bool = False,
        n_threads: int | None = None,
        n_batch: int = 512,
        name: str | None = None,
    ):
        path = Path(model_path).expanduser()
        super().__init__(name or path.name, options)
        self.path = path
        _check_model_file(path)
        import llama_cpp

        gpu = gpu_backend()
        if n_gpu_layers is None:
            n_gpu_layers = -1 if gpu else 0  # all layers when the build has a GPU
        self._device = f"{gpu} ({'all' if n_gpu_layers < 0 else n_gpu_layers} layers)" if (
            gpu and n_gpu_layers != 0
        ) else "CPU"
        self.n_ctx = n_ctx or self.options.num_ctx or DEFAULT_N_CTX
        started = time.perf_counter()
        llama_log.install()
        with _llama_errors(path):
            self._llm = llama_cpp.Llama(
                model_path=str(path),
                n_ctx=self.n_ctx,
                n_gpu_layers=n_gpu_layers,
                flash_attn=flash_attn,
                n_threads=n_threads,
                n_batch=n_batch,
                verbose=llama_log.verbose(),
            )
        self._load_ms: float | None = (time.perf_counter() - started) * 1000
        self._lock = threading.Lock()
        self._llama_cpp = llama_cpp

    @property
    def device(self) -> str:
        return self._device

    @property
    def llama(self):
        """The llama-cpp-python `Llama` this backend runs (the bench reads its model)."""
        return self._llm

    def close(self) -> None:
        with self._lock:
            if self._llm is not None:
                self._llm.close()
                self._llm = None

    # -- tokens --------------------------------------------------------------------

    def tokenize(self, text: str) -> list[int]:
        """Tokens of already templated text (special tokens such as <bos> parsed)."""
        return self._llm.tokenize(text.encode("utf-8"), add_bos=False, special=True)

    def prompt_tokens(self, request: Request) -> list[int]:
        if request.messages is not None:
            # The template writes <bos> itself; the tokenizer must not add another.
            return self.tokenize(render(request.messages))
        return self._llm.tokenize(request.prompt.encode("utf-8"), add_bos=True, special=True)

    def count_tokens(self, messages) -> int:
        """Prompt tokens a chat would take, template included."""
        return len(self.tokenize(render(normalise_messages(messages))))

    # -- generation ----------------------------------------------------------------

    def _stream(self, request: Request) -> Iterator[Chunk]:
        with self._lock:
            if self._llm is None:
                raise InvalidRequestError("this backend was closed: open the model again")
            yield from self._generate(request)

    def _generate(self, request: Request) -> Iterator[Chunk]:
        opts = request.options
        if opts.num_ctx is not None and opts.num_ctx > self.n_ctx:
            raise InvalidRequestError(
                f"num_ctx {opts.num_ctx} is over this model's context of {self.n_ctx} "
                f"tokens: open it with num_ctx={opts.num_ctx}"
            )
        tokens = self.prompt_tokens(request)
        n_ctx = opts.num_ctx or self.n_ctx
        room = opts.max_tokens or 1
        if len(tokens) + room > n_ctx:
            raise ContextOverflowError(
                f"the prompt is {len(tokens)} tokens and {room} more are asked for, but the "
                f"context holds {n_ctx}: shorten the prompt (fewer or shorter documents) "
                "or open the model with a larger num_ctx",
                prompt_tokens=len(tokens),
                n_ctx=n_ctx,
            )
        max_tokens = opts.max_tokens or (n_ctx - len(tokens))
        if opts.seed is not None:
            # llama.cpp's arithmetic depends on how a prompt is split into batches, so
            # a prompt evaluated after a cached prefix can sample differently: a seeded
            # call evaluates its prompt whole, so the same seed gives the same tokens.
            self._llm.reset()
        # What llama-cpp-python will reuse from the last call (it re-evaluates at least
        # the final prompt token, to get fresh logits).
        previous = self._llm.input_ids[: self._llm.n_tokens].tolist()
        cached = min(self._llm.longest_token_prefix(previous, tokens), len(tokens) - 1)
        llama_cpp, ctx = self._llama_cpp, self._llm.ctx
        llama_cpp.llama_perf_context_reset(ctx)
        stream = self._llm.create_completion(
            prompt=tokens,
            max_tokens=max_tokens,
            stream=True,
            temperature=SAMPLING.temperature if opts.temperature is None else opts.temperature,
            top_k=SAMPLING.top_k if opts.top_k is None else opts.top_k,
            top_p=SAMPLING.top_p if opts.top_p is None else opts.top_p,
            min_p=NEUTRAL["min_p"] if opts.min_p is None else opts.min_p,
            repeat_penalty=(
                NEUTRAL["repeat_penalty"] if opts.repeat_penalty is None else opts.repeat_penalty
            ),
            seed=opts.seed,
            grammar=self._grammar(opts),
            # Stop strings are ours (below): llama-cpp-python's would hide whether the
            # last sampled token was end-of-turn, which the token count needs.
            stop=[],
        )
        stops = StopMatcher(opts.stop)
        finish, ttft_ms, first = None, None, True
        for chunk in stream:
            choice = chunk["choices"][0]
            text, stopped = stops.feed(choice["text"])
            if first:
                ttft_ms = (time.perf_counter() - request.started) * 1000
                first = False
            if text:
                yield Chunk(text)
            if stopped:
                finish = "stop_sequence"
                break
            finish = choice["finish_reason"] or finish
        stream.close()
        if finish is None:
            finish = "stop"
        tail = stops.flush() if finish != "stop_sequence" else ""
        yield self._last_chunk(tail, finish, len(tokens), cached, ttft_ms)

    def _last_chunk(self, tail: str, finish: str, n_prompt: int, cached: int, ttft_ms) -> Chunk:
        perf = self._llama_cpp.llama_perf_context(self._llm.ctx)
        evaluated = self._llm.n_tokens - n_prompt
        # The last sampled token is never evaluated, except end-of-turn, which is
        # not part of the answer either.
        completion = evaluated if finish == "stop" else evaluated + 1
        load_ms, self._load_ms = self._load_ms, 0.0  # reported once, like Ollama's
        timings = Timings(
            load_ms=load_ms,
            prompt_ms=perf.t_p_eval_ms,
            generation_ms=perf.t_eval_ms,
            ttft_ms=ttft_ms,
            source="llama.cpp",
        )
        return Chunk(
            tail,
            finish_reason="stop" if finish == "stop_sequence" else finish,
            usage=Usage(n_prompt, completion, cached_tokens=max(cached, 0)),
            timings=timings,
        )

    def _grammar(self, opts: Options):
        if opts.json_schema is None and not opts.json_mode:
            return None
        from llama_cpp.llama_grammar import JSON_GBNF, LlamaGrammar

        if opts.json_schema is not None:
            return LlamaGrammar.from_json_schema(json.dumps(opts.json_schema), verbose=False)
        return LlamaGrammar.from_string(JSON_GBNF, verbose=False)


class StopMatcher:
    """Finds stop sequences in streamed text, holding back what may begin one."""

    def __init__(self, stops: tuple[str, ...]):
        self.stops = stops
        self.pending = ""

    def feed(self, text: str) -> tuple[str, bool]:
        """Text safe to emit now, and whether a stop sequence was reached."""
        self.pending += text
        if not self.stops:
            out, self.pending = self.pending, ""
            return out, False
        hits = [i for i in (self.pending.find(s) for s in self.stops) if i >= 0]
        if hits:
            out, self.pending = self.pending[: min(hits)], ""
            return out, True
        keep = max((self._partial(s) for s in self.stops), default=0)
        cut = len(self.pending) - keep
        out, self.pending = self.pending[:cut], self.pending[cut:]
        return out, False

    def _partial(self, stop: str) -> int:
        """Length of the longest tail of the pending text that starts `stop`."""
        for size in range(min(len(stop) - 1, len(self.pending)), 0, -1):
            if self.pending.endswith(stop[:size]):
                return size
        return 0

    def flush(self) -> str:
        out, self.pending = self.pending, ""
        return out


@contextmanager
def _llama_errors(path: Path):
    """llama-cpp-python's bare "Failed to load model" with llama.cpp's own reason."""
    try:
        yield
    except ValueError as error:
        raise BackendError(
            f"llama.cpp could not open {path} ({error}). It said:\n{llama_log.recent()}"
        ) from error


def _check_model_file(path: Path) -> None:
    """Refuse a file llama.cpp would crash on, before it opens it."""
    from borealis_local.runtime.gguf_check import check_gguf

    check_gguf(path, architectures=("gemma3",))


class LlamaCppEmbedder(Embedder):
    """A GGUF in llama.cpp, mean-pooled. One context: calls are serialised."""

    kind = "llama.cpp"

    def __init__(self, model_path: str | Path, *, n_ctx: int = 2048, n_threads: int | None = None,
                 name: str | None = None):
        from borealis_local.runtime.gguf_check import check_gguf

        path = Path(model_path).expanduser()
        check_gguf(path, architectures=_EMBEDDING_ARCHITECTURES)
        super().__init__(name or path.name)
        import llama_cpp

        llama_log.install()
        with _llama_errors(path):
            self._llm = llama_cpp.Llama(
                model_path=str(path),
                embedding=True,
                pooling_type=llama_cpp.LLAMA_POOLING_TYPE_MEAN,
                n_ctx=n_ctx,
                n_batch=n_ctx,
                n_ubatch=n_ctx,  # a text must fit one micro-batch to be pooled whole
                n_threads=n_threads,
                verbose=False,
            )
        self.n_ctx = n_ctx
        self._lock = threading.Lock()

    def _embed(self, texts: list[str]) -> list[list[float]]:
        with self._lock:
            for text in texts:
                n = len(self._llm.tokenize(text.encode("utf-8"), add_bos=True))
                if n > self.n_ctx:
                    raise InvalidRequestError(
                        f"a text of {n} tokens does not fit the embedding context of "
                        f"{self.n_ctx}: split it into smaller chunks or raise n_ctx"
                    )
            return self._llm.embed(texts, normalize=False, truncate=False)

    def close(self) -> None:
        with self._lock:
            self._llm.close()


# Embedding GGUFs come in many architectures (bert, nomic-bert, xlm-roberta for
# bge-m3, gemma3 for embeddinggemma); the header check still catches broken files.
_EMBEDDING_ARCHITECTURES = (
    "gemma3", "gemma-embedding", "bert", "nomic-bert", "xlm-roberta", "jina-bert-v2",
    "qwen3", "llama",
)  # fmt: skip


class LlamaCppRuntime(RuntimeKind):
    """A .gguf path or a catalog name whose GGUF is on this machine, run in-process."""

    name = "llama.cpp"
    in_process = True

    def recognise(self, name: str) -> dict[str, Any] | None:
        if resolve.looks_like_path(name):
            return {"model_path": Path(name).expanduser()}
        try:
            model, quant = parse_name(name)
        except UnknownModelError:
            return None
        return {
            "model_path": resolve.find_local_gguf(model, quant),
            "name": f"{model.name}:{quant}",
            "n_ctx": model.default_num_ctx,
        }

    def arguments(self, settings: Settings) -> dict[str, Any]:
        # A catalog name would otherwise bring its own context. No server: no timeout.
        return {} if settings.num_ctx is None else {"n_ctx": settings.num_ctx}

    def open_backend(self, arguments: dict[str, Any], options: Options | None) -> Backend:
        return LlamaCppBackend(options=options, **arguments)

    def open_embedder(self, arguments: dict[str, Any]) -> Embedder:
        return LlamaCppEmbedder(**arguments)

    def context_window(self, arguments: dict[str, Any]) -> int:
        return arguments.get("n_ctx") or DEFAULT_N_CTX

    def bench_target(self, arguments: dict[str, Any]) -> BenchTarget:
        from borealis_local.runtime.gguf_check import check_gguf

        info = check_gguf(arguments["model_path"], architectures=("gemma3",))
        return BenchTarget(path=str(info.path), quant=info.file_type, file_bytes=info.file_size)


LLAMA_CPP = LlamaCppRuntime()
