"""Borealis as a LlamaIndex `LLM`, over borealis-local's runtime layer.

`model` is any name the runtime layer resolves (`borealis_local.runtime.resolve`): a
catalog name (`borealis-open-4b:Q8_0`, a GGUF on this machine, run in llama.cpp), a
`.gguf` path, an Ollama tag (`borealis:4b`, `ollama:…`) or `openai:MODEL@BASE_URL`.
The class only translates types: templating, options, usage, timings and errors live
in the runtime layer, once for both frameworks.

Choices, following LlamaIndex's conventions for chat models:

- `complete(prompt)` sends the prompt as one user message, so Borealis's chat template
  applies (the documented contract of `BaseLLM.complete` for chat models).
  `complete(prompt, formatted=True)` sends the text as it is, with no template, as
  `CustomLLM` does with a prompt already formatted for the model.
- `raw` holds usage (`prompt_tokens`, `completion_tokens`, `total_tokens`,
  `cached_tokens`), timings in ms, the finish reason, backend and device: a dict, so
  LlamaIndex's `TokenCountingHandler` reads the counts. When streaming, the last
  response carries it (its `delta` may be empty).
- Structured prediction constrains decoding to the output class's JSON schema (the
  runtime's `json_schema` option: a llama.cpp grammar, Ollama's `format`, an
  OpenAI-compatible `response_format`) and parses with LlamaIndex's own program.
- Opened runtimes are shared by every `Borealis` (and `ChatBorealis`) with the same
  model and runtime arguments: a llama.cpp model is opened once per process, however
  many instances LlamaIndex copies. `close_shared_models()` releases them.
- A call that fails because a server is down or slow is retried `max_retries` times,
  before any text arrived (the runtime registry's one retry policy).
"""

from __future__ import annotations

import functools
from collections.abc import AsyncIterator, Iterator, Mapping, Sequence
from pathlib import Path
from types import MappingProxyType
from typing import Any

from llama_index.core.base.llms.types import (
    ChatMessage,
    ChatResponse,
    ChatResponseAsyncGen,
    ChatResponseGen,
    CompletionResponse,
    CompletionResponseAsyncGen,
    CompletionResponseGen,
    ImageBlock,
    LLMMetadata,
    MessageRole,
    TextBlock,
)
from llama_index.core.bridge.pydantic import Field
from llama_index.core.constants import DEFAULT_CONTEXT_WINDOW, DEFAULT_NUM_OUTPUTS
from llama_index.core.llms.callbacks import llm_chat_callback, llm_completion_callback
from llama_index.core.llms.llm import LLM
from llama_index.core.types import PydanticProgramMode

from borealis_local.errors import InvalidRequestError
from borealis_local.runtime import registry
from borealis_local.runtime.base import Backend, Chunk, Completion, Options, Timings, Usage
from borealis_local.runtime.kind import RuntimeKind, Settings


def close_shared_models() -> None:
    """Close every runtime the Borealis LLMs and embeddings (and LangChain's) opened in
    this process. Instances stay usable: their next call opens the model again."""
    registry.SHARED.close()


# -- the LLM -------------------------------------------------------------------------


class Borealis(LLM):
    """A Borealis model on llama.cpp, Ollama or an OpenAI-compatible server.

    ```python
    from llama_index.llms.borealis import Borealis

    llm = Borealis(model="borealis-open-4b", temperature=0.3, max_tokens=512)
    print(llm.complete("Hva er hovedstaden i Norge?"))
    ```
    """

    model: str = Field(description="Catalog name, .gguf path, Ollama tag or openai:MODEL@BASE_URL.")
    temperature: float | None = Field(
        default=None, description="Sampling temperature; None: the catalog's (Gemma 3's)."
    )
    max_tokens: int | None = Field(
        default=None, description="Most tokens per answer; None: until the turn ends."
    )
    context_window: int | None = Field(
        default=None,
        description="Context in tokens: llama.cpp opens the model with it, Ollama runs it, "
        "an OpenAI-compatible server is checked against it. None: the configured default.",
    )
    request_timeout: float | None = Field(
        default=None,
        description="Seconds a server may stay silent (Ollama, OpenAI-compatible); "
        "None: the runtime's default. llama.cpp runs in-process and has none.",
    )
    additional_kwargs: dict[str, Any] = Field(
        default_factory=dict,
        description="Other runtime options for every call: top_k, top_p, min_p, "
        "repeat_penalty, seed, stop.",
    )
    backend_kwargs: dict[str, Any] = Field(
        default_factory=dict,
        description="Arguments for the runtime: n_threads, n_gpu_layers (llama.cpp), "
        "host (Ollama), api_key (OpenAI-compatible), …",
    )
    max_retries: int = Field(
        default=2,
        ge=0,
        description="Times to retry a call that failed because the server was down or "
        "timed out, before any text arrived.",
    )

    def __init__(self, **data: Any) -> None:
        super().__init__(**data)
        _describe(self.model)  # a bad name fails here, not in the middle of a query
        self._options({})  # so do bad options

    @classmethod
    def class_name(cls) -> str:
        return "Borealis"

    @property
    def metadata(self) -> LLMMetadata:
        """From the catalog and this configuration: no network call, no model opened."""
        return LLMMetadata(
            context_window=self._context_window(),
            num_output=self.max_tokens or DEFAULT_NUM_OUTPUTS,
            is_chat_model=True,
            is_function_calling_model=False,
            model_name=self.model,
        )

    # -- chat ------------------------------------------------------------------------

    @llm_chat_callback()
    def chat(self, messages: Sequence[ChatMessage], **kwargs: Any) -> ChatResponse:
        backend, options = self._backend(), self._options(kwargs)
        completion = self._retry.call(lambda: backend.chat(_messages(messages), **options))
        return _chat_response(completion.text, None, _raw(completion))

    @llm_chat_callback()
    def stream_chat(self, messages: Sequence[ChatMessage], **kwargs: Any) -> ChatResponseGen:
        backend, options = self._backend(), self._options(kwargs)
        chunks = self._retry.stream(lambda: backend.stream_chat(_messages(messages), **options))
        return _chat_stream(chunks, backend)

    @llm_chat_callback()
    async def achat(self, messages: Sequence[ChatMessage], **kwargs: Any) -> ChatResponse:
        backend, options = self._backend(), self._options(kwargs)
        completion = await self._retry.acall(lambda: backend.achat(_messages(messages), **options))
        return _chat_response(completion.text, None, _raw(completion))

    @llm_chat_callback()
    async def astream_chat(
        self, messages: Sequence[ChatMessage], **kwargs: Any
    ) -> ChatResponseAsyncGen:
        backend, options = self._backend(), self._options(kwargs)
        chunks = self._retry.astream(lambda: backend.astream_chat(_messages(messages), **options))
        return _achat_stream(chunks, backend)

    # -- completion: one user turn, or raw text when `formatted` -----------------------

    @llm_completion_callback()
    def complete(self, prompt: str, formatted: bool = False, **kwargs: Any) -> CompletionResponse:
        method, argument = _completion_call(prompt, formatted)
        call, options = getattr(self._backend(), method), self._options(kwargs)
        completion = self._retry.call(lambda: call(argument, **options))
        return CompletionResponse(text=completion.text, raw=_raw(completion))

    @llm_completion_callback()
    def stream_complete(
        self, prompt: str, formatted: bool = False, **kwargs: Any
    ) -> CompletionResponseGen:
        method, argument = _completion_call(prompt, formatted)
        backend, options = self._backend(), self._options(kwargs)
        stream = getattr(backend, f"stream_{method}")
        chunks = self._retry.stream(lambda: stream(argument, **options))
        return _completion_stream(chunks, backend)

    @llm_completion_callback()
    async def acomplete(
        self, prompt: str, formatted: bool = False, **kwargs: Any
    ) -> CompletionResponse:
        method, argument = _completion_call(prompt, formatted)
        call, options = getattr(self._backend(), f"a{method}"), self._options(kwargs)
        completion = await self._retry.acall(lambda: call(argument, **options))
        return CompletionResponse(text=completion.text, raw=_raw(completion))

    @llm_completion_callback()
    async def astream_complete(
        self, prompt: str, formatted: bool = False, **kwargs: Any
    ) -> CompletionResponseAsyncGen:
        method, argument = _completion_call(prompt, formatted)
        backend, options = self._backend(), self._options(kwargs)
        stream = getattr(backend, f"astream_{method}")
        chunks = self._retry.astream(lambda: stream(argument, **options))
        return _acompletion_stream(chunks, backend)

    # -- structured prediction: decoding held to the output class's schema ------------

    def structured_predict(self, output_cls, prompt, llm_kwargs=None, **prompt_args):
        kwargs = self._schema_kwargs(output_cls, llm_kwargs)
        return super().structured_predict(output_cls, prompt, kwargs, **prompt_args)

    async def astructured_predict(self, output_cls, prompt, llm_kwargs=None, **prompt_args):
        kwargs = self._schema_kwargs(output_cls, llm_kwargs)
        return await super().astructured_predict(output_cls, prompt, kwargs, **prompt_args)

    def stream_structured_predict(self, output_cls, prompt, llm_kwargs=None, **prompt_args):
        kwargs = self._schema_kwargs(output_cls, llm_kwargs)
        return super().stream_structured_predict(output_cls, prompt, kwargs, **prompt_args)

    async def astream_structured_predict(self, output_cls, prompt, llm_kwargs=None, **prompt_args):
        kwargs = self._schema_kwargs(output_cls, llm_kwargs)
        return await super().astream_structured_predict(output_cls, prompt, kwargs, **prompt_args)

    def _schema_kwargs(self, output_cls, llm_kwargs: dict[str, Any] | None) -> dict[str, Any]:
        """The call's options with the output class's JSON schema, when LlamaIndex's
        text-completion program runs (the default for a model without tool calling)."""
        kwargs = dict(llm_kwargs or {})
        if self.pydantic_program_mode in (PydanticProgramMode.DEFAULT, PydanticProgramMode.LLM):
            kwargs.setdefault("json_schema", output_cls.model_json_schema())
        return kwargs

    # -- the runtime -------------------------------------------------------------------

    @property
    def _retry(self) -> registry.RetryPolicy:
        return registry.RetryPolicy(self.max_retries)

    def _backend(self) -> Backend:
        """The runtime with this LLM's settings (backend_kwargs win), shared per process."""
        settings = Settings(timeout=self.request_timeout, num_ctx=self.context_window)
        return registry.shared_backend(self.model, settings, self.backend_kwargs)

    def _options(self, call_kwargs: dict[str, Any]) -> dict[str, Any]:
        """Runtime options for one call: this LLM's, then the call's (checked here)."""
        options = {
            "temperature": self.temperature,
            "max_tokens": self.max_tokens,
            "num_ctx": self.context_window,
            **self.additional_kwargs,
            **call_kwargs,
        }
        Options().merged(**options)  # raises InvalidRequestError naming the options
        return options

    def _context_window(self) -> int:
        if self.context_window is not None:
            return self.context_window
        kind, described = _describe(self.model)
        window = kind.context_window({**described, **self.backend_kwargs})
        return window or DEFAULT_CONTEXT_WINDOW  # a server we cannot ask without a call


@functools.lru_cache(maxsize=64)
def _describe(name: str) -> tuple[RuntimeKind, Mapping[str, Any]]:
    """Which runtime a name means and its arguments (memoised: metadata is read often;
    a catalog name looks for its GGUF on disk)."""
    kind, arguments = registry.describe(name)
    return kind, MappingProxyType(arguments)


# -- translating types ----------------------------------------------------------------


def _messages(messages: Sequence[ChatMessage]) -> list[dict[str, Any]]:
    """LlamaIndex messages as the runtime's role/content dicts: text, or text and image
    parts where a message holds `ImageBlock`s (bytes, a path or a URL)."""
    result = []
    for message in messages:
        role = message.role.value if isinstance(message.role, MessageRole) else message.role
        if all(isinstance(block, TextBlock) for block in message.blocks):
            result.append({"role": role, "content": message.content or ""})
            continue
        parts = []
        for block in message.blocks:
            if isinstance(block, TextBlock):
                parts.append({"type": "text", "text": block.text})
            elif isinstance(block, ImageBlock):
                parts.append({"type": "image", "image": _image_source(block)})
            else:
                raise InvalidRequestError(
                    f"Borealis takes text and images: a {type(block).__name__} cannot go "
                    "to the model"
                )
        result.append({"role": role, "content": parts})
    return result


def _image_source(block: ImageBlock) -> Any:
    """A URL or path as given (the runtime fetches and checks it), else the bytes."""
    if block.url is not None:
        return str(block.url)
    if block.path is not None:
        return Path(block.path)
    return block.resolve_image().read()


def _completion_call(prompt: str, formatted: bool) -> tuple[str, Any]:
    """The backend method family and argument for a completion: a prompt already
    formatted for the model goes as raw text, any other as one user turn."""
    if formatted:
        return "complete", prompt
    return "chat", [{"role": "user", "content": prompt}]


def _raw(result: Completion | Chunk, backend: Backend | None = None) -> dict[str, Any]:
    """Usage, timings and where the answer came from, as LlamaIndex reads `raw`."""
    usage: Usage = result.usage or Usage()
    timings: Timings = result.timings or Timings()
    if isinstance(result, Completion):
        model, kind, device = result.model, result.backend, result.device
    else:
        model, kind, device = backend.model, backend.kind, backend.device
    return {
        "model": model,
        "backend": kind,
        "device": device,
        "finish_reason": result.finish_reason,
        "usage": {
            "prompt_tokens": usage.prompt_tokens,
            "completion_tokens": usage.completion_tokens,
            "total_tokens": usage.total_tokens,
            "cached_tokens": usage.cached_tokens,
        },
        "timings": {
            "load_ms": timings.load_ms,
            "prompt_ms": timings.prompt_ms,
            "generation_ms": timings.generation_ms,
            "ttft_ms": timings.ttft_ms,
            "source": timings.source,
        },
    }


def _last_raw(chunk: Chunk, backend: Backend) -> dict[str, Any] | None:
    return _raw(chunk, backend) if chunk.finish_reason is not None else None


def _chat_response(text: str, delta: str | None, raw: Any) -> ChatResponse:
    message = ChatMessage(role=MessageRole.ASSISTANT, content=text)
    return ChatResponse(message=message, delta=delta, raw=raw)


def _chat_stream(chunks: Iterator[Chunk], backend: Backend) -> ChatResponseGen:
    text = ""
    for chunk in chunks:
        text += chunk.text
        yield _chat_response(text, chunk.text, _last_raw(chunk, backend))


async def _achat_stream(chunks: AsyncIterator[Chunk], backend: Backend) -> ChatResponseAsyncGen:
    text = ""
    async for chunk in chunks:
        text += chunk.text
        yield _chat_response(text, chunk.text, _last_raw(chunk, backend))


def _completion_stream(chunks: Iterator[Chunk], backend: Backend) -> CompletionResponseGen:
    text = ""
    for chunk in chunks:
        text += chunk.text
        yield CompletionResponse(text=text, delta=chunk.text, raw=_last_raw(chunk, backend))


async def _acompletion_stream(
    chunks: AsyncIterator[Chunk], backend: Backend
) -> CompletionResponseAsyncGen:
    text = ""
    async for chunk in chunks:
        text += chunk.text
        yield CompletionResponse(text=text, delta=chunk.text, raw=_last_raw(chunk, backend))
