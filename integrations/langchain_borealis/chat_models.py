"""Borealis chat models for LangChain, on borealis-local's runtime layer.

`ChatBorealis` only translates types: templating, stop sequences, options, usage,
timings and errors live in the runtime layer (`borealis_local.runtime`), so the same
model name works here, in LlamaIndex and on the command line.

**Input (LangChain -> runtime)**: system, human and AI messages become system, user and
assistant turns (text, and standard image blocks: base64, URL or OpenAI's image_url;
images reach servers started with `--mmproj`, see the runtime); the instance's options
and the call's keyword arguments become the runtime's `Options`. A `model=` keyword
picks another model for one call.

**Output (runtime -> LangChain)**: streaming is the primitive. Every runtime chunk
becomes an `AIMessageChunk`; the last one carries `usage_metadata` and
`response_metadata` (model name, finish reason, backend, device, timings) and
`chunk_position="last"`. `invoke` is built on the stream.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncIterator, Iterator, Mapping, Sequence
from operator import itemgetter
from typing import Any, Literal

from langchain_core.callbacks import (
    AsyncCallbackManagerForLLMRun,
    CallbackManagerForLLMRun,
)
from langchain_core.language_models import LanguageModelInput
from langchain_core.language_models.chat_models import (
    BaseChatModel,
    LangSmithParams,
    agenerate_from_stream,
    generate_from_stream,
)
from langchain_core.messages import (
    AIMessage,
    AIMessageChunk,
    BaseMessage,
    ChatMessage,
    HumanMessage,
    SystemMessage,
)
from langchain_core.messages.ai import UsageMetadata
from langchain_core.output_parsers import JsonOutputParser, PydanticOutputParser
from langchain_core.outputs import ChatGenerationChunk, ChatResult
from langchain_core.runnables import Runnable, RunnableMap, RunnablePassthrough
from langchain_core.utils.function_calling import convert_to_json_schema
from langchain_core.utils.pydantic import is_basemodel_subclass
from pydantic import BaseModel, ConfigDict, Field, SecretStr

from borealis_local.errors import InvalidRequestError
from borealis_local.runtime import registry
from borealis_local.runtime.base import Backend, Chunk, Usage
from borealis_local.runtime.kind import Settings

PROVIDER = "borealis"
ROLE_OF = {SystemMessage: "system", HumanMessage: "user", AIMessage: "assistant"}
CHAT_ROLES = {
    "system": "system",
    "user": "user",
    "human": "user",
    "assistant": "assistant",
    "ai": "assistant",
}
NO_TOOLS = (
    "Borealis (Gemma 3) has no tool-calling tokens, so ChatBorealis does not bind tools: "
    "for structured answers use with_structured_output(schema), which constrains the "
    "output to the schema"
)


class ChatBorealis(BaseChatModel):
    """A Borealis model on any borealis-local runtime.

    Setup:
        `pip install "borealis-local[langchain,llama-cpp]"` (or `[langchain,ollama]`,
        `[langchain,openai]` for a server), and a Borealis GGUF on this machine
        (`hf download NbAiLab/borealis-open-4b-gguf borealis-open-4b-Q4_K_M.gguf`).

    Instantiate:
        ```python
        from langchain_borealis import ChatBorealis

        llm = ChatBorealis(model="borealis-open-4b:Q4_K_M", temperature=0.3, max_tokens=256)
        llm = ChatBorealis(model="./borealis-open-1b-Q8_0.gguf")     # a GGUF file
        llm = ChatBorealis(model="borealis:4b")                       # an Ollama tag
        llm = ChatBorealis(model="openai:borealis-4b@http://127.0.0.1:8080/v1")
        ```

    Invoke and stream:
        ```python
        llm.invoke("Hva er hovedstaden i Norge?").content
        for chunk in llm.stream("Skriv et dikt om fjorden."):
            print(chunk.text, end="")
        ```

    Structured output (a JSON schema the runtime enforces while generating):
        ```python
        class Svar(BaseModel):
            by: str
        llm.with_structured_output(Svar).invoke("Hovedstaden i Norge?")
        ```

    Models opened by one instance are shared with every other instance that names the
    same model with the same backend arguments: a GGUF is loaded once per process.
    """

    model_config = ConfigDict(extra="forbid")

    model: str
    """The model: a catalog name (`borealis-open-4b:Q8_0`), a `.gguf` path, an Ollama
    tag (`borealis:4b`, `ollama:NAME`) or an OpenAI-compatible server
    (`openai:MODEL@BASE_URL`)."""

    temperature: float | None = None
    """Sampling temperature; None uses Gemma 3's default (1.0)."""

    max_tokens: int | None = None
    """Most tokens to generate; None lets the answer run to the end of the context."""

    stop: list[str] | None = None
    """Sequences that end the answer (not included in it)."""

    timeout: float | None = None
    """Seconds to wait for a server (Ollama, OpenAI-compatible) to connect and to send
    each part of the answer; None uses the backend's default. In-process llama.cpp
    waits on no server."""

    max_retries: int = 2
    """Times to retry a call that failed because the runtime was down or timed out,
    before any text arrived."""

    top_k: int | None = None
    """Sample from the k most likely tokens (0 turns it off); None: Gemma 3's 64."""

    top_p: float | None = None
    """Nucleus sampling threshold; None: Gemma 3's 0.95."""

    min_p: float | None = None
    """Drop tokens less likely than min_p times the most likely one."""

    repeat_penalty: float | None = None
    """Penalty for repeated tokens (1.0 turns it off)."""

    seed: int | None = None
    """Random seed, for answers that repeat."""

    num_ctx: int | None = None
    """Context window in tokens; None uses the model's catalog default."""

    api_key: SecretStr | None = None
    """API key for an OpenAI-compatible server; None reads OPENAI_API_KEY."""

    backend_kwargs: dict[str, Any] = Field(default_factory=dict)
    """More arguments for the backend's constructor, e.g. `{"n_threads": 4,
    "n_gpu_layers": -1}` for llama.cpp or `{"host": "http://gpu-box:11434"}` for Ollama."""

    streaming: bool = False
    """Whether `invoke` takes LangChain's streaming path. Either way `invoke` is built
    on the runtime's stream and callbacks see every token."""

    # -- identity ------------------------------------------------------------------

    @property
    def _llm_type(self) -> str:
        return "borealis-chat"

    @property
    def _identifying_params(self) -> dict[str, Any]:
        return {"model": self.model, **self._default_options()}

    def _get_ls_params(self, stop: list[str] | None = None, **kwargs: Any) -> LangSmithParams:
        params = LangSmithParams(
            ls_provider=PROVIDER,
            ls_model_name=kwargs.get("model") or self.model,
            ls_model_type="chat",
        )
        temperature = kwargs.get("temperature", self.temperature)
        if temperature is not None:
            params["ls_temperature"] = temperature
        max_tokens = kwargs.get("max_tokens", self.max_tokens)
        if max_tokens is not None:
            params["ls_max_tokens"] = max_tokens
        stops = stop if stop is not None else self.stop
        if stops:
            params["ls_stop"] = list(stops)
        return params

    # -- the stream, sync and async ------------------------------------------------

    def _stream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> Iterator[ChatGenerationChunk]:
        name, backend, turns, options = self._prepare(messages, stop, kwargs)
        retry = registry.RetryPolicy(self.max_retries)
        for chunk in retry.stream(lambda: backend.stream_chat(turns, **options)):
            generation = _generation_chunk(chunk, name, backend)
            if run_manager and chunk.text:
                run_manager.on_llm_new_token(chunk.text, chunk=generation)
            yield generation

    async def _astream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> AsyncIterator[ChatGenerationChunk]:
        # Opening a GGUF takes seconds: never on the event loop.
        name, backend, turns, options = await asyncio.to_thread(
            self._prepare, messages, stop, kwargs
        )
        retry = registry.RetryPolicy(self.max_retries)
        async for chunk in retry.astream(lambda: backend.astream_chat(turns, **options)):
            generation = _generation_chunk(chunk, name, backend)
            if run_manager and chunk.text:
                await run_manager.on_llm_new_token(chunk.text, chunk=generation)
            yield generation

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        return generate_from_stream(self._stream(messages, stop, run_manager, **kwargs))

    async def _agenerate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        return await agenerate_from_stream(self._astream(messages, stop, run_manager, **kwargs))

    def _prepare(self, messages, stop, kwargs) -> tuple[str, Backend, list[dict], dict]:
        """The model name, its backend, the runtime's messages and the call's options."""
        kwargs = dict(kwargs)
        kwargs.pop("stream", None)  # LangChain's own switch, not a generation option
        name = kwargs.pop("model", None) or self.model
        options = {**self._default_options(), **kwargs}
        if stop is not None:
            options["stop"] = list(stop)
        return name, self._backend(name), to_runtime_messages(messages), options

    def _default_options(self) -> dict[str, Any]:
        fields = (
            "temperature",
            "max_tokens",
            "top_k",
            "top_p",
            "min_p",
            "repeat_penalty",
            "seed",
            "num_ctx",
        )
        options = {f: getattr(self, f) for f in fields if getattr(self, f) is not None}
        if self.stop:
            options["stop"] = list(self.stop)
        return options

    # -- backends ------------------------------------------------------------------

    def _backend(self, name: str) -> Backend:
        """The runtime for `name` with this instance's settings, shared per process."""
        api_key = self.api_key.get_secret_value() if self.api_key is not None else None
        settings = Settings(timeout=self.timeout, num_ctx=self.num_ctx, api_key=api_key)
        return registry.shared_backend(name, settings, self.backend_kwargs)

    # -- structured output (no tools: Gemma 3 has no tool-calling tokens, and
    # BaseChatModel.bind_tools already refuses) ------------------------------------

    def with_structured_output(
        self,
        schema: dict | type | None = None,
        *,
        method: Literal["json_schema", "json_mode", "function_calling"] = "json_schema",
        include_raw: bool = False,
        **kwargs: Any,
    ) -> Runnable[LanguageModelInput, dict | BaseModel]:
        """A runnable that answers with an object of `schema`.

        Args:
            schema: a pydantic class, a TypedDict or a JSON schema (dict). Optional for
                `json_mode`, where it only picks the parser.
            method: `"json_schema"` (default): the runtime constrains generation to
                the schema (a grammar in llama.cpp, `format` in Ollama,
                `response_format` on OpenAI-compatible servers). `"json_mode"`: any
                JSON object; say in the prompt which keys you want.
                `"function_calling"` is taken as `"json_schema"`: Gemma 3 has no tool
                tokens, and the schema-constrained answer is the same object.
            include_raw: return `{"raw": AIMessage, "parsed": …, "parsing_error": …}`.
            kwargs: `strict` is accepted and ignored: schema-constrained output is
                always strict.
        """
        kwargs.pop("strict", None)
        if kwargs:
            raise ValueError(f"with_structured_output got unsupported arguments {kwargs}")
        if method == "function_calling":
            method = "json_schema"
        if method not in ("json_schema", "json_mode"):
            raise ValueError(
                f"method {method!r}: ChatBorealis supports 'json_schema' and 'json_mode'"
            )
        if method == "json_schema" and schema is None:
            raise ValueError("method 'json_schema' needs a schema")
        trace = {"kwargs": {"method": method}, "schema": schema}
        if method == "json_mode":
            llm = self.bind(json_mode=True, ls_structured_output_format=trace)
        else:
            llm = self.bind(json_schema=_json_schema(schema), ls_structured_output_format=trace)
        parser = (
            PydanticOutputParser(pydantic_object=schema)
            if _is_pydantic_class(schema)
            else JsonOutputParser()
        )
        if not include_raw:
            return llm | parser
        parsed = RunnablePassthrough.assign(
            parsed=itemgetter("raw") | parser, parsing_error=lambda _: None
        )
        unparsed = RunnablePassthrough.assign(parsed=lambda _: None)
        return RunnableMap(raw=llm) | parsed.with_fallbacks(
            [unparsed], exception_key="parsing_error"
        )


# -- messages ----------------------------------------------------------------------


def to_runtime_messages(messages: Sequence[BaseMessage]) -> list[dict[str, Any]]:
    """LangChain messages as the runtime's role/content dicts: text, or text and image
    parts where a message holds image blocks."""
    return [
        {"role": _role(message, i), "content": _content(message, i)}
        for i, message in enumerate(messages)
    ]


def _role(message: BaseMessage, index: int) -> str:
    if isinstance(message, AIMessage) and message.tool_calls:
        raise InvalidRequestError(f"message {index} holds tool calls: {NO_TOOLS}")
    for kind, role in ROLE_OF.items():
        if isinstance(message, kind):
            return role
    if isinstance(message, ChatMessage) and message.role in CHAT_ROLES:
        return CHAT_ROLES[message.role]
    what = message.role if isinstance(message, ChatMessage) else message.type
    raise InvalidRequestError(
        f"message {index} is a {what!r} message: Borealis takes system, human and AI "
        f"messages only" + (f" ({NO_TOOLS})" if what in ("tool", "function") else "")
    )


def _content(message: BaseMessage, index: int) -> str | list[dict[str, Any]]:
    """Text blocks joined as LangChain joins them; with an image block, the runtime's
    parts (LangChain's standard image blocks: base64 or URL, v0 and v1 shapes, and
    OpenAI's image_url)."""
    if isinstance(message.content, str):
        return message.content
    parts: list[dict[str, Any]] = []
    for block in message.content:
        if isinstance(block, str) or (isinstance(block, dict) and block.get("type") == "text"):
            text = block if isinstance(block, str) else block.get("text", "")
            if parts and parts[-1]["type"] == "text":
                parts[-1] = {"type": "text", "text": parts[-1]["text"] + text}
            else:
                parts.append({"type": "text", "text": text})
        else:
            parts.append({"type": "image", "image": _image_source(block, index)})
    if all(part["type"] == "text" for part in parts):
        return "".join(part["text"] for part in parts)
    return parts


def _image_source(block: Any, index: int) -> str:
    """What an image block holds, as a URL or data: URL the runtime decodes."""
    part_type = block.get("type") if isinstance(block, dict) else type(block).__name__
    if part_type == "image_url":
        url = block.get("image_url")
        return url.get("url") if isinstance(url, dict) else url
    if part_type == "image":
        mime = block.get("mime_type") or "image/png"
        data = block.get("base64") or (
            block.get("data") if block.get("source_type") == "base64" else None
        )
        if data:
            return f"data:{mime};base64,{data}"
        if block.get("url"):
            return block["url"]
    raise InvalidRequestError(
        f"message {index} holds a {part_type!r} block: Borealis takes text and image "
        "blocks (base64 or URL) only"
    )


def _generation_chunk(chunk: Chunk, model_name: str, backend: Backend) -> ChatGenerationChunk:
    if chunk.finish_reason is None:
        return ChatGenerationChunk(message=AIMessageChunk(content=chunk.text))
    metadata = {
        "model_name": model_name,
        "model_provider": PROVIDER,
        "finish_reason": chunk.finish_reason,
        "backend": backend.kind,
        "device": backend.device,
        "timings": dataclasses.asdict(chunk.timings) if chunk.timings else None,
    }
    message = AIMessageChunk(
        content=chunk.text,
        usage_metadata=_usage(chunk.usage or Usage()),
        response_metadata=metadata,
        chunk_position="last",
    )
    return ChatGenerationChunk(
        message=message, generation_info={"finish_reason": chunk.finish_reason}
    )


def _usage(usage: Usage) -> UsageMetadata:
    return UsageMetadata(
        input_tokens=usage.prompt_tokens,
        output_tokens=usage.completion_tokens,
        total_tokens=usage.total_tokens,
        input_token_details={"cache_read": usage.cached_tokens},
    )


# -- structured output -------------------------------------------------------------


def _is_pydantic_class(schema: Any) -> bool:
    return isinstance(schema, type) and is_basemodel_subclass(schema)


def _json_schema(schema: dict | type) -> dict[str, Any]:
    """The JSON schema the runtime enforces, from a pydantic class, TypedDict or dict."""
    if _is_pydantic_class(schema):
        if hasattr(schema, "model_json_schema"):
            return schema.model_json_schema()
        return schema.schema()  # pydantic.v1
    if isinstance(schema, Mapping):
        # An OpenAI function description carries its JSON schema in "parameters".
        if "parameters" in schema and "name" in schema:
            return dict(schema["parameters"])
        return dict(schema)
    converted = convert_to_json_schema(schema)  # a TypedDict
    converted.setdefault("required", list(converted.get("properties", {})))
    return converted


# -- shared backends ---------------------------------------------------------------


def close_shared_backends() -> None:
    """Close every chat model opened for ChatBorealis and Borealis (llama.cpp frees its
    memory); instances stay usable and open their model again on the next call."""
    registry.SHARED.close("chat")
