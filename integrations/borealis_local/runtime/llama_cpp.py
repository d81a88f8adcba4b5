"""llama.cpp in-process through llama-cpp-python: the embedded default backend."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path

from borealis_local.catalog import SAMPLING
from borealis_local.errors import ContextOverflowError, InvalidRequestError
from borealis_local.runtime.base import (
    Backend,
    Chunk,
    Options,
    Request,
    Timings,
    Usage,
    normalise_messages,
)
from borealis_local.templates import render

# llama-cpp-python's own defaults (min_p 0.05, repeat_penalty 1.1, top_k 40) are not
# llama.cpp's nor Gemma's: we send Gemma 3's sampling and neutral min_p / penalty.
NEUTRAL = {"min_p": 0.0, "repeat_penalty": 1.0}
DEFAULT_N_CTX = 4096


def _gpu_backend() -> str | None:
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

        gpu = _gpu_backend()
        if n_gpu_layers is None:
            n_gpu_layers = -1 if gpu else 0  # all layers when the build has a GPU
        self._device = f"{gpu} ({'all' if n_gpu_layers < 0 else n_gpu_layers} layers)" if (
            gpu and n_gpu_layers != 0
        ) else "CPU"
        self.n_ctx = n_ctx or self.options.num_ctx or DEFAULT_N_CTX
        started = time.perf_counter()
        self._llm = llama_cpp.Llama(
            model_path=str(path),
            n_ctx=self.n_ctx,
            n_gpu_layers=n_gpu_layers,
            flash_attn=flash_attn,
            n_threads=n_threads,
            n_batch=n_batch,
            verbose=False,
        )
        self._load_ms: float | None = (time.perf_counter() - started) * 1000
        self._lock = threading.Lock()
        self._llama_cpp = llama_cpp

    @property
    def device(self) -> str:
        return self._device

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
        llama_cpp, ctx = self._llama_cpp, self._llm._ctx.ctx
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
        perf = self._llama_cpp.llama_perf_context(self._llm._ctx.ctx)
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


def _check_model_file(path: Path) -> None:
    """Refuse a file llama.cpp would crash on, before it opens it."""
    from borealis_local.runtime.gguf_check import check_gguf

    check_gguf(path, architectures=("gemma3",))

