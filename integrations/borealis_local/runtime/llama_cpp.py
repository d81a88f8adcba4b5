"""llama.cpp in-process through llama-cpp-python: the embedded default backend."""

from __future__ import annotations

import json
import re
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Literal

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
    has_images,
    images_in,
    normalise_messages,
    with_images_as,
)
from borealis_local.runtime.embeddings import Embedder
from borealis_local.runtime.kind import BenchTarget, RuntimeKind, Settings
from borealis_local.templates import render

# llama-cpp-python's own defaults (min_p 0.05, repeat_penalty 1.1, top_k 40) are not
# llama.cpp's nor Gemma's: we send Gemma 3's sampling and neutral min_p / penalty.
NEUTRAL = {"min_p": 0.0, "repeat_penalty": 1.0}
DEFAULT_N_CTX = 4096

# Flash attention as llama.cpp takes it: its enum llama_flash_attn_type (AUTO -1, DISABLED
# 0, ENABLED 1), which llama-bench's JSON records as "flash_attn", and the words its
# command lines accept for each (common/arg.cpp: is_autoy, is_truthy, is_falsey).
FlashAttn = Literal["auto", "on", "off"]
FLASH_ATTN_CHOICES: tuple[FlashAttn, ...] = ("auto", "on", "off")
FLASH_ATTN_AUTO, FLASH_ATTN_OFF, FLASH_ATTN_ON = -1, 0, 1
_FLASH_ATTN_WORDS = {
    "auto": FLASH_ATTN_AUTO, "-1": FLASH_ATTN_AUTO,
    "on": FLASH_ATTN_ON, "enabled": FLASH_ATTN_ON, "true": FLASH_ATTN_ON, "1": FLASH_ATTN_ON,
    "off": FLASH_ATTN_OFF, "disabled": FLASH_ATTN_OFF, "false": FLASH_ATTN_OFF,
    "0": FLASH_ATTN_OFF,
}  # fmt: skip
# What llama.cpp logs when it resolves `auto` (llama-context.cpp, resolve_fused_ops).
_FLASH_ATTN_RESOLVED = re.compile(r"Flash Attention (enabled|not supported)")

# A sliding-window cache (swa_full=False, llama-server's and Ollama's default) instead of
# llama.cpp's context default, a full-size one: Gemma 3's local layers (5 of every 6)
# keep n_swa + n_ubatch cells, not n_ctx. Measured on the stand-in, 2 threads, n_ctx 4096
# (benchmarks/swa_full.py, issue 14's note): KV cache 27 MiB instead of 72 (the 4b at 16k:
# 0.5 GiB instead of 2.1); on an 1818-token RAG prompt cold TTFT 3.3 s both ways, the next
# question on the same sources 61 ms against 62 (1808 tokens reused; after a 400-token
# answer on 2120 tokens, 69 ms); only after an answer longer than about the window (560) is
# the prompt evaluated whole again (3.3 s; see `_window_kept`), where the full-size
# cache still reuses it (64 ms). A turn that extends the conversation keeps reusing it
# (its window is the newest part of the cache).
DEFAULT_SWA_FULL = False


def flash_attn_type(value: FlashAttn | bool | int | str, *, what: str = "flash_attn") -> int:
    """llama.cpp's flash_attn_type (-1 auto, 0 off, 1 on) for "auto", "on", "off",
    llama-bench's -1, 1, 0 (numbers or text) or a bool."""
    if isinstance(value, bool):
        return FLASH_ATTN_ON if value else FLASH_ATTN_OFF
    word = str(value).strip().lower()
    if word not in _FLASH_ATTN_WORDS:
        raise InvalidRequestError(
            f"{what} {value!r} is not one of {', '.join(FLASH_ATTN_CHOICES)} "
            "(llama-bench's -1, 1, 0 mean the same)"
        )
    return _FLASH_ATTN_WORDS[word]


def resolve_flash_attn(requested: int, model_path: str | Path, n_gpu_layers: int) -> bool:
    """Whether flash attention runs: on and off as asked; `auto` as llama.cpp resolves
    it. llama-cpp-python's `Llama()` takes only a bool (it never passes AUTO), so `auto`
    is decided here the way llama.cpp decides it when its context is made (llama-
    context.cpp, resolve_fused_ops): on unless some layer's flash-attention node lands
    on another device than the layer (its device lacks the kernel). ggml's CPU backend
    runs FLASH_ATTN_EXT for every type and shape (ggml-cpu.cpp, supports_op), so with no
    layer offloaded it is on; otherwise llama.cpp itself is asked (`probe_flash_attn`)."""
    if requested != FLASH_ATTN_AUTO:
        return requested == FLASH_ATTN_ON
    if n_gpu_layers == 0:
        return True
    return probe_flash_attn(model_path, n_gpu_layers)


def probe_flash_attn(model_path: str | Path, n_gpu_layers: int) -> bool:
    """llama.cpp's own resolution of flash attention `auto` for this model and offload:
    a context made with AUTO on the model loaded without weights (`no_alloc`, no mmap,
    as llama.cpp's memory-fit pass in common/fit.cpp loads it), then what it logged."""
    import llama_cpp

    llama_log.install()
    params = llama_cpp.llama_model_default_params()
    params.n_gpu_layers = n_gpu_layers
    params.no_alloc = True
    params.load_mode = llama_cpp.LLAMA_LOAD_MODE_NONE
    mark = llama_log.mark()
    model = llama_cpp.llama_model_load_from_file(str(model_path).encode(), params)
    if not model:
        raise BackendError(f"llama.cpp could not open {model_path}. It said:\n{llama_log.recent()}")
    try:
        context_params = llama_cpp.llama_context_default_params()
        context_params.n_ctx = context_params.n_batch = context_params.n_ubatch = 256
        context_params.flash_attn_type = llama_cpp.LLAMA_FLASH_ATTN_TYPE_AUTO
        context = llama_cpp.llama_init_from_model(model, context_params)
        if context:
            llama_cpp.llama_free(context)
    finally:
        llama_cpp.llama_model_free(model)
    found = _FLASH_ATTN_RESOLVED.findall(llama_log.text_since(mark))
    if not found:
        raise BackendError(
            "llama.cpp did not say whether flash attention works with this model here: "
            f"open it with flash_attn='on' or 'off'. It said:\n{llama_log.recent()}"
        )
    return found[-1] == "enabled"


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

    `flash_attn`: "auto" (llama.cpp's and llama-bench's default: on where the device
    runs it), "on" or "off"; llama-bench's -1, 1, 0 too. `swa_full`: give the sliding-
    window layers a full-size cache (more memory; the default keeps their window only).

    `mmproj`: the vision projector GGUF of the same model (4b, 12b, 27b), for images in
    messages. It is loaded when the first image comes, so a text-only user pays nothing
    for it; `Backend.load_projector()` loads it now (the bench does).
    """

    kind = "llama.cpp"

    def __init__(
        self,
        model_path: str | Path,
        *,
        options: Options | None = None,
        n_ctx: int | None = None,
        n_gpu_layers: int | None = None,
        flash_attn: FlashAttn | bool | int = "auto",
        swa_full: bool = DEFAULT_SWA_FULL,
        n_threads: int | None = None,
        n_batch: int = 512,
        mmproj: str | Path | None = None,
        name: str | None = None,
    ):
        path = Path(model_path).expanduser()
        super().__init__(name or path.name, options)
        self.path = path
        self.mmproj = None if mmproj is None else Path(mmproj).expanduser()
        """The projector GGUF images need, if the model has one here."""
        if self.mmproj is not None:
            from borealis_local.runtime.gguf_check import check_gguf

            check_gguf(self.mmproj, architectures=("clip",))  # before any load
        self._projector = None
        self._gpu_layers = n_gpu_layers
        self.flash_attn_type = flash_attn_type(flash_attn)
        """As asked, llama.cpp's value: -1 auto, 0 off, 1 on (what bench rows record)."""
        if not isinstance(swa_full, bool):
            raise InvalidRequestError(f"swa_full must be True or False, not {swa_full!r}")
        self.swa_full = swa_full
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
        self.flash_attn = resolve_flash_attn(
            self.flash_attn_type, path, n_gpu_layers if gpu else 0)
        """Whether flash attention runs (`auto` resolved)."""
        with _llama_errors(path):
            self._llm = llama_cpp.Llama(
                model_path=str(path),
                n_ctx=self.n_ctx,
                n_gpu_layers=n_gpu_layers,
                flash_attn=self.flash_attn,
                swa_full=swa_full,
                n_threads=n_threads,
                n_batch=n_batch,
                verbose=llama_log.verbose(),
            )
        self._n_swa = llama_cpp.llama_model_n_swa(self._llm.model)
        self._load_ms: float | None = (time.perf_counter() - started) * 1000
        self._lock = threading.Lock()
        self._llama_cpp = llama_cpp
        # What each position of the KV cache holds (tokens, and image positions keyed by
        # the image), so a cached prefix is never matched across an image.
        self._kv_keys: list = []

    @property
    def device(self) -> str:
        return self._device

    @property
    def llama(self):
        """The llama-cpp-python `Llama` this backend runs (the bench reads its model)."""
        return self._llm

    def close(self) -> None:
        with self._lock:
            if self._projector is not None:
                self._projector.close()
                self._projector = None
            if self._llm is not None:
                self._llm.close()
                self._llm = None

    # -- images --------------------------------------------------------------------

    def image_refusal(self) -> str | None:
        if self.mmproj is not None:
            return None
        return (
            "no vision projector is loaded for this model: `borealis pull SIZE` fetches it "
            "with the weights (4b, 12b, 27b), or open the model with "
            "mmproj='mmproj-….gguf' (the projector from the same GGUF repo)"
        )

    def load_projector(self):
        """The model's projector, loaded on first use (`runtime/mtmd.Projector`)."""
        if self._projector is None:
            from borealis_local.runtime.mtmd import Projector

            if self.mmproj is None:
                raise InvalidRequestError(f"{self.model}: {self.image_refusal()}")
            self._projector = Projector(
                self.mmproj, self._llm, use_gpu=self._gpu_layers != 0,
                flash_attn=self.flash_attn,
            )
        return self._projector

    # -- tokens --------------------------------------------------------------------

    def tokenize(self, text: str) -> list[int]:
        """Tokens of already templated text (special tokens such as <bos> parsed)."""
        return self._llm.tokenize(text.encode("utf-8"), add_bos=False, special=True)

    def prompt_tokens(self, request: Request) -> list[int]:
        if request.messages is not None:
            # The template writes <bos> itself; the tokenizer must not add another.
            return self.tokenize(render(request.messages))
        return self._llm.tokenize(request.prompt.encode("utf-8"), add_bos=True, special=True)

    def image_prompt(self, messages: list[dict[str, Any]]):
        """The chat with images as libmtmd's chunks (a `runtime/mtmd.Prompt`; close it)."""
        projector = self.load_projector()
        return projector.tokenize(render(with_images_as(messages, projector.marker)),
                                  images_in(messages))

    def count_tokens(self, messages) -> int:
        """Prompt tokens a chat would take, template and images included."""
        messages = normalise_messages(messages)
        if has_images(messages):
            with self._lock, self.image_prompt(messages) as prompt:
                return len(prompt)
        return len(self.tokenize(render(messages)))

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
        if has_images(request.messages):
            with self.image_prompt(request.messages) as prompt:
                yield from self._generate_from(request, prompt.keys, prompt)
        else:
            tokens = self.prompt_tokens(request)
            yield from self._generate_from(request, tokens, None)

    def _generate_from(self, request: Request, keys: list, prompt) -> Iterator[Chunk]:
        """Generate after the prompt whose positions are `keys`: its tokens, or for a
        prompt with images (`prompt`, libmtmd's chunks) tokens and image keys."""
        opts = request.options
        tokens = keys
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
            self._kv_keys = []
        # What the cache holds that this prompt starts with (at least the final prompt
        # token is evaluated again, for fresh logits).
        cached = min(_common_prefix(self._kv_keys, keys), len(keys) - 1)
        if cached > 0 and not self._window_kept(cached):
            cached = 0  # evaluate the whole prompt, as llama-server does then
        if cached == 0:
            self._llm.reset()
        # llama-cpp-python matches its own record of the cache's tokens, which does not
        # know the image positions: it is told how much of it holds.
        self._llm.n_tokens = cached
        llama_cpp, ctx = self._llama_cpp, self._llm.ctx
        llama_cpp.llama_perf_context_reset(ctx)
        encode_ms = None
        if prompt is not None:
            tokens, encode_ms = self._evaluate_images(prompt, cached)
        self._kv_keys = list(keys)
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
        # The answer's tokens follow the prompt in the cache.
        self._kv_keys += self._llm.input_ids[len(keys): self._llm.n_tokens].tolist()
        tail = stops.flush() if finish != "stop_sequence" else ""
        yield self._last_chunk(tail, finish, len(keys), cached, ttft_ms, encode_ms)

    def _evaluate_images(self, prompt, cached: int) -> tuple[list[int], float]:
        """Put the prompt from position `cached` in the cache, images through the
        projector, all but its last token (a text token: the template ends with the
        model's turn), which generation evaluates for its logits. Returns the token list
        llama-cpp-python is then given (its record of the cache, which it finds whole,
        and the last token) and the milliseconds spent encoding images."""
        from borealis_local.runtime.mtmd import ImageChunk

        projector, llm = self.load_projector(), self._llm
        memory = self._llama_cpp.llama_get_memory(llm.ctx)
        self._llama_cpp.llama_memory_seq_rm(memory, -1, cached, -1)
        position, encode_ms, last = 0, 0.0, None
        for chunk in prompt.chunks:
            end = position + len(chunk.keys)
            if end > cached:
                if isinstance(chunk, ImageChunk):
                    if position < cached:  # never half an image: evaluate it whole
                        self._llama_cpp.llama_memory_seq_rm(memory, -1, position, -1)
                        llm.n_tokens = position
                    llm.n_tokens, took = projector.evaluate(chunk, llm.n_tokens, llm.n_batch)
                    encode_ms += took
                else:
                    todo = chunk.tokens[max(0, cached - position):]
                    if end == len(prompt):
                        todo, last = todo[:-1], todo[-1]
                    if todo:
                        llm.eval(todo)
            position = end
        if last is None:
            raise InvalidRequestError("a chat prompt must end with text (the model's turn)")
        return llm.input_ids[: llm.n_tokens].tolist() + [last], encode_ms

    def _window_kept(self, cached: int) -> bool:
        """Whether the sliding-window layers still hold the `n_swa` tokens before the
        first one to evaluate. A windowed cache (swa_full=False) drops older cells as the
        sequence grows, so after a long answer, a new question on the same documents
        would attend to less than its window; llama-cpp-python reuses the prefix anyway,
        so we check as llama-server does (server-context.cpp: the sequence's oldest
        position, `llama_memory_seq_pos_min`, against the position less the window)."""
        if self.swa_full or self._n_swa == 0:
            return True
        memory = self._llama_cpp.llama_get_memory(self._llm.ctx)
        oldest = self._llama_cpp.llama_memory_seq_pos_min(memory, 0)
        return 0 <= oldest <= max(0, cached - self._n_swa)

    def _last_chunk(self, tail: str, finish: str, n_prompt: int, cached: int, ttft_ms,
                    encode_ms: float | None = None) -> Chunk:
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
            image_encode_ms=encode_ms,
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


def _common_prefix(a: list, b: list) -> int:
    n = 0
    for x, y in zip(a, b, strict=False):
        if x != y:
            break
        n += 1
    return n


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
        # The vision projector beside the model (or in the hub cache), as llama-server -hf
        # finds it; an explicit mmproj= (None included) wins.
        if "mmproj" not in arguments:
            arguments = {**arguments,
                         "mmproj": resolve.find_local_projector(arguments["model_path"])}
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
