"""llama-bench's method on llama-cpp-python's C API, then the chat view, in-process.

Exactly tools/llama-bench/llama-bench.cpp: the model loaded once; per test a context
of n_prompt + n_gen + n_depth cells; one untimed warm-up (the whole prompt for pp, one
token for tg); then `reps` repetitions, each clearing the KV cache
(`llama_memory_clear`), evaluating `n_depth` untimed tokens, and timing pp = n_prompt
random tokens decoded in n_batch chunks, tg = n_gen single-token decodes with no
sampling (`llama_decode` + `llama_synchronize`). Per-rep rate = tokens / time; avg_ts
is their arithmetic mean and stddev_ts their sample standard deviation (`run.summary`).

Memory per row: the host peak and GPU use (`probes`), and the buffer sizes llama.cpp
logs (model, KV cache, compute, output; on Metal the only figure), read from the
process-wide capture of its log (`runtime.llama_log`). The image test (`image_view`)
adds the projector's: its weights and compute buffers as clip.cpp logs them at load.
"""

from __future__ import annotations

import ctypes
import math
import random
import re
import time
from typing import Any

from borealis_local.bench.chat_view import chat_reps
from borealis_local.bench.measure import Test, gpu_build
from borealis_local.bench.probes import GpuMemory
from borealis_local.bench.row import CPU_BACKENDS
from borealis_local.bench.run import Run, summary, system_facts
from borealis_local.errors import BackendError
from borealis_local.runtime.llama_cpp import FLASH_ATTN_OFF

# What llama.cpp logs of its buffers and devices.
_BUFFER = re.compile(r"^\s*\S+:\s+(\S+)\s+(model|KV|compute|output|RS)\s+buffer size\s*=\s*"
                     r"([\d.]+) MiB", re.M)
_DEVICE = re.compile(r"using device (\S+) \(([^)]*)\)")
# What clip.cpp (the projector's loader) logs of its weights.
_PROJECTOR_WEIGHTS = re.compile(r"^\S+:\s+model size:\s+([\d.]+) MiB", re.M)
# The prefix of the projector's buffers in a row's `buffers`.
MMPROJ_BUFFERS = "mmproj"


def buffer_sizes(log: str) -> dict[str, int]:
    """{"CPU_Mapped model": bytes, "CUDA0 KV": bytes, …} that `log` reports."""
    sizes: dict[str, int] = {}
    for device, kind, mib in _BUFFER.findall(log):
        name = f"{device} {kind}"
        sizes[name] = sizes.get(name, 0) + round(float(mib) * 2**20)
    return sizes


def logged_projector_weights(log: str) -> int | None:
    """The projector's weights as clip.cpp loaded them ("model size" in its log)."""
    found = _PROJECTOR_WEIGHTS.search(log)
    return None if found is None else round(float(found[1]) * 2**20)


def device_names(log: str) -> list[str]:
    return [name for _, name in _DEVICE.findall(log)]


def _ggml_type(name: str) -> int:
    """ggml's type id for a KV cache type name (gguf knows them all; llama_cpp lacks bf16)."""
    import gguf

    return int(gguf.GGMLQuantizationType[name.upper()])


class LlamaCppRun(Run):
    """llama-bench's tests on the C API, then the chat view through the runtime."""

    def __init__(self, config, send, step):
        super().__init__(config, send, step)
        import llama_cpp

        from borealis_local.runtime import llama_log

        self.llama_cpp = llama_cpp
        self.log = llama_log
        llama_log.install()
        self.log_start = llama_log.mark()
        llama_cpp.llama_backend_init()
        self.gpu = gpu_build()
        self.gpu_memory = GpuMemory() if self.gpu == "CUDA" else None
        self.random = random.Random(1234)

    def run(self) -> None:
        bench_tests = [t for t in self.config.tests if not (t.chat or t.image)]
        chat_tests = [t for t in self.config.tests if t.chat]
        if bench_tests:
            self._bench(bench_tests)
        for test in chat_tests:
            self._chat(test)
        for test in self.config.tests:
            if test.image:
                self._image(test)

    def _buffers(self, since: int) -> dict[str, int]:
        return buffer_sizes(self.log.text_since(since))

    def _facts(self) -> None:
        names = device_names(self.log.text_since(self.log_start))
        if not names and self.gpu_memory:
            names = self.gpu_memory.names()
        self.facts = system_facts(self.gpu or CPU_BACKENDS, names).updated(
            split_mode="layer", main_gpu=0, no_kv_offload=False, use_mmap=True,
            embeddings=False)

    # -- llama-bench's tests -----------------------------------------------------------

    def _bench(self, tests: list[Test]) -> None:
        lib, config = self.llama_cpp, self.config
        self.step("loading the model")
        params = lib.llama_model_default_params()
        params.n_gpu_layers = config.n_gpu_layers
        started = time.perf_counter()
        model = lib.llama_model_load_from_file(config.target.path.encode(), params)
        load_ms = (time.perf_counter() - started) * 1000
        if not model:
            raise BackendError(f"llama.cpp could not load {config.target.path}")
        try:
            self._facts()
            model_facts = self._model_facts(model)
            model_buffers = self._buffers(self.log_start)
            for test in tests:
                self.step(test.name)
                self.host.reset_peak()
                mark = self.log.mark()
                stats, n_ctx = self._one_test(model, test)
                buffers = {**model_buffers, **self._buffers(mark)}
                self.send(self.row(test, stats, **model_facts, **self._memory(),
                                   load_ms=load_ms, n_ctx=n_ctx, buffers=buffers))
        finally:
            lib.llama_model_free(model)

    def _model_facts(self, model) -> dict[str, Any]:
        lib = self.llama_cpp
        description = ctypes.create_string_buffer(256)
        lib.llama_model_desc(model, description, ctypes.sizeof(description))
        return {
            "model_type": description.value.decode(errors="replace"),
            "model_size": lib.llama_model_size(model),
            "model_n_params": lib.llama_model_n_params(model),
        }

    def _context(self, model, n_ctx: int):
        lib, config = self.llama_cpp, self.config
        params = lib.llama_context_default_params()
        params.n_ctx = n_ctx
        params.n_batch = config.n_batch
        params.n_ubatch = config.n_ubatch
        params.n_threads = params.n_threads_batch = config.n_threads
        params.type_k = _ggml_type(config.type_k)
        params.type_v = _ggml_type(config.type_v)
        params.offload_kqv = True
        # llama.cpp's own values (-1 auto, 0, 1), resolved by llama.cpp, as llama-bench does.
        params.flash_attn_type = config.flash_attn
        params.embeddings = False
        params.swa_full = False
        context = lib.llama_init_from_model(model, params)
        if not context:
            hint = ""
            if config.type_v != "f16" and config.flash_attn == FLASH_ATTN_OFF:
                hint = ": a quantised V cache needs flash attention (-fa auto or on)"
            raise BackendError(
                f"llama.cpp could not create a {n_ctx}-token context with "
                f"type_k={config.type_k}, type_v={config.type_v}{hint}"
            )
        return context

    def _one_test(self, model, test: Test) -> tuple[dict[str, Any], int]:
        lib, config = self.llama_cpp, self.config
        n_ctx = test.n_prompt + test.n_gen + test.n_depth
        context = self._context(model, n_ctx)
        try:
            vocab = lib.llama_model_get_vocab(model)
            memory = lib.llama_get_memory(context)
            if config.warmup:
                if test.n_prompt:
                    self._prompt(context, vocab, test.n_prompt)
                if test.n_gen:
                    self._generate(context, vocab, 1)
            samples_ns = []
            for _ in range(config.reps):
                lib.llama_memory_clear(memory, False)
                if test.n_depth:
                    self._prompt(context, vocab, test.n_depth)
                started = time.perf_counter_ns()
                if test.n_prompt:
                    self._prompt(context, vocab, test.n_prompt)
                if test.n_gen:
                    self._generate(context, vocab, test.n_gen)
                samples_ns.append(time.perf_counter_ns() - started)
            n_tokens = test.n_prompt + test.n_gen
            samples_ts = [1e9 * n_tokens / ns for ns in samples_ns]
            stats = summary(samples_ns, samples_ts)
            if self.gpu_memory is not None:
                stats["gpu_bytes"], stats["gpu_bytes_source"] = self.gpu_memory.sample()
            return stats, n_ctx
        finally:
            lib.llama_free(context)

    def _prompt(self, context, vocab, n_prompt: int) -> None:
        """n_prompt random tokens in n_batch chunks, the first one <bos> (llama-bench)."""
        lib, n_batch = self.llama_cpp, self.config.n_batch
        n_vocab = lib.llama_vocab_n_tokens(vocab)
        add_bos = lib.llama_vocab_get_add_bos(vocab)
        tokens = (lib.llama_token * n_batch)()
        done = 0
        while done < n_prompt:
            n = min(n_prompt - done, n_batch)
            for i in range(n):
                tokens[i] = self.random.randrange(n_vocab)
            if done == 0 and add_bos:
                tokens[0] = lib.llama_vocab_bos(vocab)
            self._decode(context, tokens, n)
            done += n
        lib.llama_synchronize(context)

    def _generate(self, context, vocab, n_gen: int) -> None:
        """n_gen single-token decodes, no sampling: the next token is random (llama-bench)."""
        lib = self.llama_cpp
        n_vocab = lib.llama_vocab_n_tokens(vocab)
        token = (lib.llama_token * 1)()
        token[0] = (lib.llama_vocab_bos(vocab) if lib.llama_vocab_get_add_bos(vocab)
                    else self.random.randrange(n_vocab))
        for _ in range(n_gen):
            self._decode(context, token, 1)
            lib.llama_synchronize(context)
            token[0] = self.random.randrange(n_vocab)

    def _decode(self, context, tokens, n: int) -> None:
        status = self.llama_cpp.llama_decode(context, self.llama_cpp.llama_batch_get_one(tokens, n))
        if status != 0:
            raise BackendError(f"llama_decode failed with status {status}")

    def _memory(self) -> dict[str, Any]:
        return self.host.row_fields(self.baseline)

    # -- the chat view -----------------------------------------------------------------

    def _open_backend(self, n_ctx: int, **extra: Any):
        """The runtime's backend on this configuration's settings, as a user opens it."""
        from borealis_local.runtime.llama_cpp import LlamaCppBackend, resolve_flash_attn

        config = self.config
        # `auto` resolved before the caller's mark: on a GPU llama.cpp is asked with a
        # model loaded without weights, whose simulated buffers are not this row's.
        n_gpu_layers = config.n_gpu_layers if self.gpu else 0
        if n_gpu_layers is None:
            n_gpu_layers = -1  # the backend's default on a GPU build: every layer
        flash_attn = resolve_flash_attn(config.flash_attn, config.target.path, n_gpu_layers)
        mark = self.log.mark()
        backend = LlamaCppBackend(
            config.target.path, name=config.target.name, n_ctx=n_ctx,
            n_gpu_layers=config.n_gpu_layers, flash_attn=flash_attn,
            n_threads=config.n_threads, n_batch=config.n_batch, **extra,
        )
        return backend, mark

    def _chat(self, test: Test) -> None:
        config = self.config
        self.step(f"{test.name}: loading the model")
        self.host.reset_peak()
        n_ctx = 256 * math.ceil((test.n_gen + 256) / 256)  # the message is < 100 tokens
        backend, mark = self._open_backend(n_ctx)
        try:
            if self.facts is None:
                self._facts()
            model_facts = self._model_facts(backend.llama.model)
            self.step(test.name)
            stats, extra = chat_reps(backend, test, config, seed_resets=True)
            if self.gpu_memory is not None:
                stats["gpu_bytes"], stats["gpu_bytes_source"] = self.gpu_memory.sample()
            self.send(self.row(test, stats, **model_facts, **self._memory(), **extra,
                               n_ctx=n_ctx, buffers=self._buffers(mark)))
        finally:
            backend.close()

    # -- an image ----------------------------------------------------------------------

    def _image(self, test: Test) -> None:
        from borealis_local.bench.image_view import bench_image, image_reps
        from borealis_local.catalog import GEMMA3_VISION

        config = self.config
        image = bench_image(config.image)
        self.step(f"{test.name}: loading the model and its projector")
        self.host.reset_peak()
        # The image's tokens, the message and the answer.
        n_ctx = 256 * math.ceil((GEMMA3_VISION.tokens_per_image + 256 + test.n_gen) / 256)
        backend, mark = self._open_backend(n_ctx, mmproj=config.mmproj)
        try:
            if self.facts is None:
                self._facts()
            model_facts = self._model_facts(backend.llama.model)
            model_buffers = self._buffers(mark)  # before the projector logs its own
            projector = backend.load_projector()
            projector_buffers = buffer_sizes(projector.load_log)
            self.step(test.name)
            stats, extra = image_reps(backend, image, test, config)
            if self.gpu_memory is not None:
                stats["gpu_bytes"], stats["gpu_bytes_source"] = self.gpu_memory.sample()
            buffers = model_buffers | {f"{MMPROJ_BUFFERS} {name}": size
                                       for name, size in projector_buffers.items()}
            compute = sum(size for name, size in projector_buffers.items()
                          if name.endswith(" compute"))
            self.send(self.row(
                test, stats, **model_facts, **self._memory(), **extra, n_ctx=n_ctx,
                buffers=buffers, image=config.image, mmproj=config.mmproj,
                mmproj_label=config.mmproj_label, mmproj_load_ms=projector.load_ms,
                mmproj_file_bytes=projector.path.stat().st_size,
                mmproj_weight_bytes=logged_projector_weights(projector.load_log),
                mmproj_compute_bytes=compute or None,
            ))
        finally:
            backend.close()


__all__ = ["MMPROJ_BUFFERS", "LlamaCppRun", "buffer_sizes", "device_names",
           "logged_projector_weights"]
