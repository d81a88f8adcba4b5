"""ChatBorealis and BorealisEmbeddings on real llama.cpp inference (the stand-in model).

langchain-tests' standard integration suites run on the Gemma 3 270M *base* model
in-process. Its answers mean nothing: the tests (ours and the standard ones) assert
structure, usage, stopping, streaming and errors, never content. Capability flags say
what the stand-in has: no tool calling, no image (it has no projector here; see
test_vision_in_process.py), audio or PDF input; JSON-constrained output.
"""

from __future__ import annotations

import asyncio
import json
import socket
import time

import pytest
from langchain_core.messages import AIMessage, HumanMessage, SystemMessage, ToolMessage
from langchain_core.vectorstores import InMemoryVectorStore
from langchain_tests.integration_tests import (
    ChatModelIntegrationTests,
    EmbeddingsIntegrationTests,
)
from pydantic import BaseModel, Field

from borealis_local import templates
from borealis_local.errors import (
    ContextOverflowError,
    InvalidRequestError,
    ServerUnavailableError,
    StructuredOutputError,
)
from langchain_borealis import BorealisEmbeddings, ChatBorealis
from langchain_borealis.chat_models import close_shared_backends
from langchain_borealis.embeddings import close_shared_embedders

pytestmark = pytest.mark.slow

# Small and fast on 2 cores; temperature 0 so a base model's answers repeat.
RUNTIME = {"num_ctx": 2048, "backend_kwargs": {"n_threads": 2}}
STAND_IN: dict[str, str] = {}  # filled by the module fixture below, read by the suites


@pytest.fixture(scope="module", autouse=True)
def stand_in(gemma_gguf, llama_cpp, tmp_path_factory):
    """The stand-in GGUF's path, and a second name for it (for per-call model override)."""
    STAND_IN["model"] = str(gemma_gguf)
    other = tmp_path_factory.mktemp("override") / "stand-in-override.gguf"
    other.symlink_to(gemma_gguf)
    STAND_IN["override"] = str(other)
    yield
    close_shared_backends()
    close_shared_embedders()


def chat(**params) -> ChatBorealis:
    return ChatBorealis(**{"model": STAND_IN["model"], **RUNTIME, **params})


def backend_of(llm: ChatBorealis, model: str | None = None):
    """The shared runtime backend the instance calls for this model."""
    return llm._backend(model or llm.model)


# -- langchain-tests' standard suites ----------------------------------------------

CUT_JSON = pytest.mark.xfail(
    raises=StructuredOutputError,
    strict=False,
    reason="the stand-in may not close the standard Joke JSON within max_tokens=32 on "
    "this CPU; that must be StructuredOutputError naming max_tokens",
)


class TestChatBorealisStandard(ChatModelIntegrationTests):
    @property
    def chat_model_class(self) -> type[ChatBorealis]:
        return ChatBorealis

    @property
    def chat_model_params(self) -> dict:
        # The integration suite sets no max_tokens: a base model could fill the context.
        # 32 keeps it fast on 2 cores and still holds the short JSON answers.
        return {"model": STAND_IN["model"], "temperature": 0, "max_tokens": 32, **RUNTIME}

    @property
    def model_override_value(self) -> str:
        return STAND_IN["override"]

    @property
    def has_tool_calling(self) -> bool:
        return False  # Gemma 3 has no tool-calling tokens

    @property
    def supports_json_mode(self) -> bool:
        return True

    @property
    def returns_usage_metadata(self) -> bool:
        return True

    @property
    def supports_image_inputs(self) -> bool:
        # This suite's stand-in runs without a projector (270m and 1b have no vision
        # tower); test_vision_in_process.py runs the standard image test with one.
        return False

    @pytest.mark.xfail(
        reason="the stand-in is a base model: it does not follow the instruction to answer "
        "with the keys setup and punchline; json_mode guarantees JSON, not keys (the "
        "json_schema method guarantees them, see test_structured_output)"
    )
    def test_json_mode(self, model) -> None:
        super().test_json_mode(model)

    # The standard Joke schema's strings are unbounded, so whether the stand-in closes
    # its JSON within max_tokens=32 depends on its greedy picks, which differ between
    # CPUs (AVX-512 and AVX2). Only that outcome is tolerated: a cut JSON must end in our
    # StructuredOutputError naming max_tokens; any other failure fails these tests. The
    # bounded-schema tests below check the same path on every CPU.

    @CUT_JSON
    @pytest.mark.parametrize("schema_type", ["pydantic", "typeddict", "json_schema"])
    def test_structured_output(self, model, schema_type) -> None:
        super().test_structured_output(model, schema_type)

    @CUT_JSON
    @pytest.mark.parametrize("schema_type", ["pydantic", "typeddict", "json_schema"])
    async def test_structured_output_async(self, model, schema_type) -> None:
        await super().test_structured_output_async(model, schema_type)

    @CUT_JSON
    def test_structured_output_pydantic_2_v1(self, model) -> None:
        super().test_structured_output_pydantic_2_v1(model)

    @CUT_JSON
    def test_structured_output_optional_param(self, model) -> None:
        super().test_structured_output_optional_param(model)


class TestBorealisEmbeddingsStandard(EmbeddingsIntegrationTests):
    """Mean-pooled hidden states of the stand-in: real vectors, not a trained embedder."""

    @property
    def embeddings_class(self) -> type[BorealisEmbeddings]:
        return BorealisEmbeddings

    @property
    def embedding_model_params(self) -> dict:
        return {"model": STAND_IN["model"], "embedder_kwargs": {"n_ctx": 512, "n_threads": 2}}


# -- ChatBorealis on the stand-in: what the standard suites do not check -------------


def test_usage_counts_the_templated_prompt_and_the_answer():
    llm = chat(max_tokens=8, temperature=0)
    messages = [SystemMessage("Svar kort."), HumanMessage("Hva heter hovedstaden i Norge?")]
    result = llm.invoke(messages)
    runtime_messages = [
        {"role": "system", "content": "Svar kort."},
        {"role": "user", "content": "Hva heter hovedstaden i Norge?"},
    ]
    backend = backend_of(llm)
    usage = result.usage_metadata
    assert usage["input_tokens"] == backend.count_tokens(runtime_messages)
    assert 1 <= usage["output_tokens"] <= 8
    assert usage["total_tokens"] == usage["input_tokens"] + usage["output_tokens"]
    # The tokens llama.cpp evaluated are the Borealis template of these messages.
    evaluated = backend.llama.input_ids[: usage["input_tokens"]].tolist()
    assert evaluated == backend.tokenize(templates.render(runtime_messages))
    meta = result.response_metadata
    assert meta["finish_reason"] in ("stop", "length")
    assert meta["backend"] == "llama.cpp" and meta["device"] == "CPU"
    assert meta["timings"]["source"] == "llama.cpp" and meta["timings"]["generation_ms"] > 0


def test_max_tokens_ends_the_answer_with_finish_reason_length():
    result = chat(max_tokens=5, temperature=0).invoke("Once upon a time")
    assert result.usage_metadata["output_tokens"] == 5
    assert result.response_metadata["finish_reason"] == "length"


def test_stream_carries_usage_and_metadata_on_the_last_chunk_only():
    chunks = list(chat(max_tokens=8, temperature=0).stream("Once upon a time"))
    assert len(chunks) >= 3
    assert all(c.usage_metadata is None and not c.response_metadata for c in chunks[:-1])
    last = chunks[-1]
    assert last.chunk_position == "last"
    assert last.usage_metadata["output_tokens"] == 8
    assert last.response_metadata["model_name"] == STAND_IN["model"]


def test_stream_and_invoke_give_the_same_answer_at_temperature_zero():
    llm = chat(max_tokens=12, temperature=0)
    streamed = "".join(c.text for c in llm.stream("Once upon a time"))
    assert streamed == llm.invoke("Once upon a time").text


def test_a_stop_sequence_ends_the_answer_before_it():
    llm = chat(max_tokens=24, temperature=0)
    full = llm.invoke("1, 2, 3, 4, 5,").text
    assert ", " in full.strip(", ")  # the base model keeps counting
    stop = full.strip(", ").split(", ")[1]
    stopped = llm.invoke("1, 2, 3, 4, 5,", stop=[stop])
    assert stop not in stopped.text and full.startswith(stopped.text)
    assert stopped.response_metadata["finish_reason"] == "stop"


async def test_astream_never_blocks_the_event_loop():
    ticks = 0

    async def tick():
        nonlocal ticks
        while True:
            await asyncio.sleep(0.005)
            ticks += 1

    ticker = asyncio.create_task(tick())
    started = time.perf_counter()
    chunks = [c async for c in chat(max_tokens=16, temperature=0).astream("Once upon a time")]
    elapsed = time.perf_counter() - started
    ticker.cancel()
    assert chunks[-1].usage_metadata["output_tokens"] == 16
    # The loop kept ticking while the model generated in a worker thread.
    assert ticks >= elapsed / 0.005 * 0.3


def test_instances_naming_the_same_model_share_one_backend():
    first, second = chat(temperature=0.2), chat(temperature=0.9, max_tokens=3)
    assert backend_of(first) is backend_of(second)
    second.invoke("Hei")
    assert backend_of(chat()) is backend_of(second)


def test_model_override_per_call_uses_and_reports_the_other_model():
    llm = chat(max_tokens=4, temperature=0)
    result = llm.invoke("Hei", model=STAND_IN["override"])
    assert result.response_metadata["model_name"] == STAND_IN["override"]
    assert llm._get_ls_params(model=STAND_IN["override"])["ls_model_name"] == STAND_IN["override"]
    assert backend_of(llm) is not backend_of(llm, STAND_IN["override"])


class Capital(BaseModel):
    city: str = Field(max_length=24)
    population: int


# The grammar bounds a Capital (24 characters, 16 digits, single spaces) to well under
# this many tokens, so its JSON closes whatever the model picks, on every CPU.
CAPITAL_TOKENS = 160


def test_json_schema_output_parses_into_the_schema():
    structured = chat(max_tokens=CAPITAL_TOKENS, temperature=0).with_structured_output(Capital)
    result = structured.invoke("Hovedstaden i Norge, som JSON:")
    assert isinstance(result, Capital)


def test_json_schema_output_with_include_raw_keeps_the_message():
    structured = chat(max_tokens=CAPITAL_TOKENS, temperature=0).with_structured_output(
        Capital.model_json_schema(), include_raw=True
    )
    result = structured.invoke("Hovedstaden i Norge, som JSON:")
    assert isinstance(result["raw"], AIMessage) and result["parsing_error"] is None
    assert set(result["parsed"]) == {"city", "population"}


@pytest.mark.parametrize("stream", [False, True])
def test_json_cut_by_max_tokens_says_so_not_a_pydantic_traceback(stream):
    structured = chat(max_tokens=1, temperature=0).with_structured_output(Capital)
    # The shortest Capital, `{"city":"","population":0}`, is more than one token.
    with pytest.raises(StructuredOutputError, match="max_tokens=1.*raise max_tokens"):
        if stream:
            list(structured.stream("Hovedstaden i Norge, som JSON:"))
        else:
            structured.invoke("Hovedstaden i Norge, som JSON:")


def test_json_mode_answers_json_or_says_max_tokens_cut_it():
    structured = chat(max_tokens=48, temperature=0).with_structured_output(
        method="json_mode", include_raw=True
    )
    # Any object: whether it closes within 48 tokens is the model's choice.
    try:
        result = structured.invoke("Et JSON-objekt om Oslo:")
    except StructuredOutputError as error:
        assert error.max_tokens == 48 and error.text.lstrip().startswith("{")
    else:
        raw = result["raw"]
        assert raw.response_metadata["finish_reason"] == "stop"
        assert json.loads(raw.text) == result["parsed"]


def test_a_prompt_over_the_context_raises_the_runtimes_error():
    llm = chat(max_tokens=8)
    with pytest.raises(ContextOverflowError, match="larger num_ctx"):
        llm.invoke("ord " * 3000)


def test_a_tool_message_is_refused_with_a_clear_error():
    with pytest.raises(InvalidRequestError, match="no tool-calling tokens"):
        chat().invoke([HumanMessage("Hei"), ToolMessage("42", tool_call_id="1")])


def test_an_unknown_option_is_refused_with_the_list_of_options():
    with pytest.raises(InvalidRequestError, match="unknown option.*temperature"):
        chat().invoke("Hei", temprature=0.5)


def test_a_server_that_is_down_fails_after_the_retries_with_the_runtimes_message():
    with socket.socket() as s:  # a loopback port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    llm = ChatBorealis(
        model=f"openai:borealis@http://127.0.0.1:{port}/v1", max_retries=1, timeout=5
    )
    started = time.perf_counter()
    with pytest.raises(ServerUnavailableError, match=f"127.0.0.1:{port}"):
        llm.invoke("Hei")
    assert time.perf_counter() - started >= 0.5  # one retry, after its back-off


# -- embeddings on the stand-in ------------------------------------------------------


def test_embeddings_are_normalised_and_work_in_an_in_memory_vector_store():
    embeddings = BorealisEmbeddings(
        model=STAND_IN["model"], embedder_kwargs={"n_ctx": 512, "n_threads": 2}
    )
    vectors = embeddings.embed_documents(["Oslo er hovedstaden.", "Bergen har regn."])
    assert len(vectors) == 2 and len(vectors[0]) == 640
    assert all(abs(sum(x * x for x in v) - 1) < 1e-4 for v in vectors)
    store = InMemoryVectorStore(embeddings)
    store.add_texts(["Oslo er hovedstaden.", "Bergen har regn."])
    found = store.similarity_search("Oslo er hovedstaden.", k=1)
    assert found[0].page_content == "Oslo er hovedstaden."  # identical text: same vector
