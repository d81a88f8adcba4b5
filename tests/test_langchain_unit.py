"""ChatBorealis without a model: langchain-tests' standard unit suite, message and
option translation, retries, backend sharing and structured-output wiring.

Where a call must run, a scripted backend stands in for the runtime: `ScriptedBackend`
is a test double that keeps the runtime's Backend contract (chunks, then a last chunk
with finish reason, usage and timings) and records what it was asked.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator
from typing import Annotated, TypedDict

import pytest
from langchain_core.messages import (
    AIMessage,
    ChatMessage,
    HumanMessage,
    SystemMessage,
    ToolMessage,
)
from langchain_tests.unit_tests import ChatModelUnitTests
from pydantic import BaseModel

from borealis_local.errors import (
    BackendTimeoutError,
    ContextOverflowError,
    InvalidRequestError,
    ServerUnavailableError,
)
from borealis_local.runtime import registry
from borealis_local.runtime.base import Backend, Chunk, Request, Timings, Usage
from langchain_borealis import ChatBorealis
from langchain_borealis.chat_models import close_shared_backends, to_runtime_messages


class TestChatBorealisUnit(ChatModelUnitTests):
    """The standard unit suite with no capability flags: what langchain-tests infers
    from the class itself (no bind_tools override: no tool calling) must hold."""

    @property
    def chat_model_class(self) -> type[ChatBorealis]:
        return ChatBorealis

    @property
    def chat_model_params(self) -> dict:
        # Constructing opens nothing: the model is loaded on the first call.
        return {"model": "borealis-open-270m:Q8_0"}


# -- a scripted runtime --------------------------------------------------------------


class ScriptedBackend(Backend):
    """Test double of a runtime backend: answers from a script, records requests.

    Each script entry is one call: a list of texts (the answer's chunks), or an
    exception to raise, optionally after some chunks (`(texts, error)`).
    """

    kind = "scripted"

    def __init__(self, model: str, *, options=None, script=None, **arguments):
        super().__init__(model, options)
        self.arguments = arguments
        self.script = list(script or [])
        self.requests: list[Request] = []

    def _stream(self, request: Request) -> Iterator[Chunk]:
        self.requests.append(request)
        entry = self.script.pop(0) if self.script else ["Hei", " på", " deg"]
        texts, error = entry if isinstance(entry, tuple) else (entry, None)
        if isinstance(entry, Exception):
            texts, error = [], entry
        for text in texts:
            yield Chunk(text)
        if error is not None:
            raise error
        yield Chunk(
            "",
            finish_reason="stop",
            usage=Usage(prompt_tokens=11, completion_tokens=len(texts), cached_tokens=2),
            timings=Timings(prompt_ms=1.0, generation_ms=2.0, source="scripted"),
        )


class ScriptedRuntime:
    """The backends ChatBorealis opened through registry.open_backend, by model name,
    and the script each model's backend will answer from."""

    def __init__(self):
        self.opened: dict[str, list[ScriptedBackend]] = defaultdict(list)
        self.scripts: dict[str, list] = {}

    def open_backend(self, name, *, options=None, **arguments) -> ScriptedBackend:
        backend = ScriptedBackend(name, options=options, script=self.scripts.get(name), **arguments)
        self.opened[name].append(backend)
        return backend

    def backend(self, name: str) -> ScriptedBackend:
        return self.opened[name][0]


@pytest.fixture
def runtime(monkeypatch):
    close_shared_backends()
    runtime = ScriptedRuntime()
    monkeypatch.setattr(registry, "open_backend", runtime.open_backend)
    monkeypatch.setattr(registry, "backoff", lambda attempt: 0.0)
    yield runtime
    close_shared_backends()


MODEL = "ollama:scripted"


# -- messages --------------------------------------------------------------------------


def test_messages_become_runtime_turns():
    messages = [
        SystemMessage("Svar kort."),
        HumanMessage("Hei"),
        AIMessage("Hei!"),
        ChatMessage(role="user", content="Hva heter du?"),
        HumanMessage(content=[{"type": "text", "text": "Del "}, "to"]),
    ]
    assert to_runtime_messages(messages) == [
        {"role": "system", "content": "Svar kort."},
        {"role": "user", "content": "Hei"},
        {"role": "assistant", "content": "Hei!"},
        {"role": "user", "content": "Hva heter du?"},
        {"role": "user", "content": "Del to"},
    ]


@pytest.mark.parametrize(
    ("message", "error"),
    [
        (ToolMessage("42", tool_call_id="1"), "no tool-calling tokens"),
        (ChatMessage(role="critic", content="Nei"), "'critic' message"),
        (AIMessage("", tool_calls=[{"name": "f", "args": {}, "id": "1"}]), "tool calls"),
        (
            HumanMessage(content=[{"type": "audio", "base64": "AAAA", "mime_type": "audio/wav"}]),
            "'audio' block: Borealis takes text and image blocks",
        ),
    ],
)
def test_messages_borealis_cannot_take_are_refused_clearly(message, error):
    with pytest.raises(InvalidRequestError, match=error):
        to_runtime_messages([message])


def test_image_blocks_in_every_standard_shape_become_image_parts():
    shapes = [
        {"type": "image", "base64": "QUJD", "mime_type": "image/jpeg"},  # v1
        {"type": "image", "source_type": "base64", "data": "QUJD", "mime_type": "image/png"},
        {"type": "image", "url": "https://example.org/a.png"},  # v1
        {"type": "image", "source_type": "url", "url": "https://example.org/b.png"},
        {"type": "image_url", "image_url": {"url": "data:image/png;base64,QUJD"}},
        {"type": "image_url", "image_url": "https://example.org/c.png"},
    ]
    [turn] = to_runtime_messages([HumanMessage(content=["Se ", *shapes, "her"])])
    assert turn["content"][0] == {"type": "text", "text": "Se "}
    assert turn["content"][-1] == {"type": "text", "text": "her"}
    assert [part["image"] for part in turn["content"][1:-1]] == [
        "data:image/jpeg;base64,QUJD",
        "data:image/png;base64,QUJD",
        "https://example.org/a.png",
        "https://example.org/b.png",
        "data:image/png;base64,QUJD",
        "https://example.org/c.png",
    ]


# -- identity and tracing ----------------------------------------------------------------


def test_ls_params_follow_the_instance_and_the_call():
    llm = ChatBorealis(model="borealis:4b", temperature=0.3, max_tokens=64, stop=["\n\n"])
    assert llm._get_ls_params() == {
        "ls_provider": "borealis",
        "ls_model_name": "borealis:4b",
        "ls_model_type": "chat",
        "ls_temperature": 0.3,
        "ls_max_tokens": 64,
        "ls_stop": ["\n\n"],
    }
    per_call = llm._get_ls_params(stop=["."], model="borealis:12b", temperature=0.0)
    assert per_call["ls_model_name"] == "borealis:12b"
    assert per_call["ls_temperature"] == 0.0 and per_call["ls_stop"] == ["."]


def test_a_misspelt_field_is_refused():
    with pytest.raises(ValueError, match="temprature"):
        ChatBorealis(model="borealis:4b", temprature=0.3)


def test_bind_tools_is_langchains_own_refusal():
    # Not overridden, so LangChain code (and langchain-tests) that asks whether a model
    # binds tools by looking for an override gets the true answer: no.
    assert "bind_tools" not in vars(ChatBorealis)
    with pytest.raises(NotImplementedError):
        ChatBorealis(model="borealis:4b").bind_tools([])


# -- calls through the runtime -------------------------------------------------------------


def test_invoke_returns_the_text_usage_and_metadata(runtime):
    result = ChatBorealis(model=MODEL).invoke("Hei")
    assert result.content == "Hei på deg"
    assert result.usage_metadata == {
        "input_tokens": 11,
        "output_tokens": 3,
        "total_tokens": 14,
        "input_token_details": {"cache_read": 2},
    }
    meta = result.response_metadata
    assert meta["model_name"] == MODEL and meta["finish_reason"] == "stop"
    assert meta["backend"] == "scripted" and meta["timings"]["source"] == "scripted"


def test_stream_yields_each_chunk_then_a_last_one_with_usage(runtime):
    chunks = list(ChatBorealis(model=MODEL).stream("Hei"))
    assert [c.content for c in chunks] == ["Hei", " på", " deg", ""]
    assert [c.usage_metadata is None for c in chunks] == [True, True, True, False]
    assert chunks[-1].chunk_position == "last"


async def test_astream_and_ainvoke_use_the_runtimes_async_stream(runtime):
    llm = ChatBorealis(model=MODEL)
    chunks = [c.content async for c in llm.astream("Hei")]
    assert chunks == ["Hei", " på", " deg", ""]
    assert (await llm.ainvoke("Hei")).content == "Hei på deg"


def test_options_come_from_the_instance_and_the_call_overrides_them(runtime):
    llm = ChatBorealis(model=MODEL, temperature=0.2, max_tokens=50, top_k=10, seed=7, stop=["END"])
    llm.invoke("Hei")
    llm.invoke("Hei", temperature=0.9, stop=["."], min_p=0.1)
    first, second = (r.options for r in runtime.backend(MODEL).requests)
    assert (first.temperature, first.max_tokens, first.top_k, first.seed) == (0.2, 50, 10, 7)
    assert first.stop == ("END",)
    assert (second.temperature, second.stop, second.min_p) == (0.9, (".",), 0.1)


def test_model_override_opens_and_reports_the_other_model(runtime):
    result = ChatBorealis(model=MODEL).invoke("Hei", model="ollama:other")
    assert result.response_metadata["model_name"] == "ollama:other"
    assert runtime.backend("ollama:other").requests and MODEL not in runtime.opened


def test_instances_share_a_backend_per_model_and_arguments(runtime):
    ChatBorealis(model=MODEL, temperature=0.1).invoke("Hei")
    ChatBorealis(model=MODEL, temperature=0.9).invoke("Hei")
    assert len(runtime.opened[MODEL]) == 1
    ChatBorealis(model=MODEL, backend_kwargs={"host": "http://127.0.0.1:1"}).invoke("Hei")
    assert len(runtime.opened[MODEL]) == 2


@pytest.mark.parametrize(
    ("model", "expected"),
    [
        ("borealis:4b", {"timeout": 30}),
        (
            "openai:borealis@http://127.0.0.1:8080/v1",
            {"timeout": 30, "api_key": "sk-local", "max_retries": 0},
        ),
        ("./borealis-open-270m-Q8_0.gguf", {"n_ctx": 1024}),
    ],
)
def test_fields_reach_the_backends_that_take_them(runtime, model, expected):
    llm = ChatBorealis(model=model, timeout=30, api_key="sk-local", num_ctx=1024)
    llm.invoke("Hei")
    assert runtime.backend(model).arguments == expected
    assert runtime.backend(model).options.num_ctx == 1024


@pytest.mark.parametrize("error", [ServerUnavailableError("down"), BackendTimeoutError("slow")])
def test_a_runtime_that_is_down_or_slow_is_retried(runtime, error):
    runtime.scripts[MODEL] = [error, error]
    assert ChatBorealis(model=MODEL, max_retries=2).invoke("Hei").content == "Hei på deg"
    assert len(runtime.backend(MODEL).requests) == 3


def test_retries_stop_at_max_retries_and_the_runtimes_error_passes_through(runtime):
    runtime.scripts[MODEL] = [ServerUnavailableError("Ollama is not running — start it")] * 3
    with pytest.raises(ServerUnavailableError, match="start it"):
        ChatBorealis(model=MODEL, max_retries=1).invoke("Hei")
    assert len(runtime.backend(MODEL).requests) == 2


def test_an_answer_that_broke_off_is_not_retried(runtime):
    runtime.scripts[MODEL] = [(["Hei"], BackendTimeoutError("slow"))]
    with pytest.raises(BackendTimeoutError):
        list(ChatBorealis(model=MODEL, max_retries=2).stream("Hei"))
    assert len(runtime.backend(MODEL).requests) == 1


def test_other_errors_are_not_retried(runtime):
    error = ContextOverflowError("too long: shorten it", prompt_tokens=9000, n_ctx=4096)
    runtime.scripts[MODEL] = [error]
    with pytest.raises(ContextOverflowError, match="shorten it"):
        ChatBorealis(model=MODEL, max_retries=2).invoke("Hei")
    assert len(runtime.backend(MODEL).requests) == 1


async def test_async_calls_retry_too(runtime):
    runtime.scripts[MODEL] = [ServerUnavailableError("down")]
    assert (await ChatBorealis(model=MODEL).ainvoke("Hei")).content == "Hei på deg"
    assert len(runtime.backend(MODEL).requests) == 2


def test_a_backend_argument_the_backend_lacks_is_a_clear_error(monkeypatch):
    close_shared_backends()
    llm = ChatBorealis(model="openai:m@http://127.0.0.1:1/v1", backend_kwargs={"n_threads": 2})
    with pytest.raises(InvalidRequestError, match="n_threads.*backend_kwargs"):
        llm.invoke("Hei")


# -- structured output -------------------------------------------------------------------


class City(BaseModel):
    name: str
    population: int


class CityDict(TypedDict):
    name: Annotated[str, ..., "the city's name"]
    population: int


def bound_options(runnable) -> dict:
    """The keyword arguments a structured-output chain binds to the model."""
    return runnable.first.kwargs


@pytest.mark.parametrize("method", ["json_schema", "function_calling"])
def test_a_pydantic_schema_is_enforced_by_the_runtime(runtime, method):
    runtime.scripts[MODEL] = [['{"name": "Oslo", ', '"population": 717710}']]
    structured = ChatBorealis(model=MODEL).with_structured_output(City, method=method)
    assert bound_options(structured)["json_schema"] == City.model_json_schema()
    assert structured.invoke("Hovedstaden?") == City(name="Oslo", population=717710)
    assert runtime.backend(MODEL).requests[0].options.json_schema == City.model_json_schema()


def test_a_typeddict_or_json_schema_gives_a_dict(runtime):
    runtime.scripts[MODEL] = [['{"name": "Bergen", "population": 291940}']] * 2
    llm = ChatBorealis(model=MODEL)
    typed = llm.with_structured_output(CityDict)
    assert bound_options(typed)["json_schema"]["required"] == ["name", "population"]
    assert typed.invoke("By?") == {"name": "Bergen", "population": 291940}
    plain = llm.with_structured_output(City.model_json_schema())
    assert plain.invoke("By?") == {"name": "Bergen", "population": 291940}


def test_an_openai_function_description_uses_its_parameters():
    function = {"name": "city", "parameters": City.model_json_schema()}
    structured = ChatBorealis(model=MODEL).with_structured_output(function)
    assert bound_options(structured)["json_schema"] == City.model_json_schema()


def test_json_mode_asks_the_runtime_for_any_json(runtime):
    runtime.scripts[MODEL] = [['{"by": "Tromsø"}']]
    structured = ChatBorealis(model=MODEL).with_structured_output(method="json_mode")
    assert structured.invoke("Svar i JSON") == {"by": "Tromsø"}
    options = runtime.backend(MODEL).requests[0].options
    assert options.json_mode and options.json_schema is None


def test_include_raw_keeps_the_message_and_the_parsing_error(runtime):
    runtime.scripts[MODEL] = [['{"name": "Oslo"}']]
    result = ChatBorealis(model=MODEL).with_structured_output(City, include_raw=True).invoke("?")
    assert isinstance(result["raw"], AIMessage) and result["parsed"] is None
    assert result["parsing_error"] is not None


@pytest.mark.parametrize(
    ("kwargs", "error"),
    [
        ({"method": "tool_use"}, "supports 'json_schema' and 'json_mode'"),
        ({"method": "json_schema", "schema": None}, "needs a schema"),
        ({"tools": []}, "unsupported arguments"),
    ],
)
def test_structured_output_misuse_is_refused(kwargs, error):
    arguments = {"schema": City, **kwargs}
    schema = arguments.pop("schema")
    with pytest.raises(ValueError, match=error):
        ChatBorealis(model=MODEL).with_structured_output(schema, **arguments)
