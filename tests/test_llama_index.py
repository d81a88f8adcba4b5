"""The LlamaIndex integration on real parts.

- `Borealis` on the stand-in Gemma 3 270M *base* model, in llama.cpp in-process and
  behind a real llama-server on loopback (tests/llama_server_support.py): every method,
  sync and async, streaming and not; usage, timings and metadata.
- `BorealisEmbedding` on the same GGUF in llama.cpp (mean-pooled hidden states: real
  vectors, meaningless semantics).
- A VectorStoreIndex over the project's example corpus, a query engine and a
  condense-plus-context chat engine end to end: the prompt the model receives is
  recorded at the runtime's door and checked to be the Norwegian one, in the question's
  language, with the retrieved nodes and the question in order.

A base model's answers mean nothing: the tests assert tokens, structure, usage and
prompts, never what the model says.
"""

from __future__ import annotations

import math
import socket

import llama_server_support as support
import pytest
from llama_index.core.base.llms.generic_utils import messages_to_history_str
from llama_index.core.base.llms.types import ChatMessage, ImageBlock, MessageRole, TextBlock
from llama_index.core.callbacks import CallbackManager, TokenCountingHandler
from llama_index.core.constants import DEFAULT_CONTEXT_WINDOW, DEFAULT_NUM_OUTPUTS
from llama_index.core.prompts import PromptTemplate
from pydantic import BaseModel

from borealis_local import templates
from borealis_local.catalog import DEFAULT_NUM_CTX
from borealis_local.errors import (
    BackendTimeoutError,
    InvalidRequestError,
    StructuredOutputError,
)
from borealis_local.prompts import LANGUAGES, format_sources, get_prompts
from llama_index.embeddings.borealis import BorealisEmbedding
from llama_index.llms.borealis import (
    Borealis,
    close_shared_models,
    condense_plus_context_chat_engine,
    condense_question_chat_engine,
    norwegian_query_engine,
)

pytestmark = pytest.mark.slow

llama_server_binary = support.llama_server_binary
llama_server_process = support.llama_server_process
llama_server = support.llama_server

MAX_TOKENS = 8
N_CTX = 2048
MESSAGES = [
    ChatMessage(role=MessageRole.SYSTEM, content="Svar kort."),
    ChatMessage(role=MessageRole.USER, content="Hva heter hovedstaden i Norge?"),
]
PROMPT = "Skriv ett ord om fjorder."
COUNTING = "1, 2, 3, 4, 5,"


# -- the two runtimes -------------------------------------------------------------------


@pytest.fixture(scope="module")
def local_llm(gemma_gguf):
    return Borealis(
        model=str(gemma_gguf),
        temperature=0,
        max_tokens=MAX_TOKENS,
        context_window=N_CTX,
        backend_kwargs={"n_threads": 2},
    )


@pytest.fixture(scope="module")
def server_llm(llama_server):
    return Borealis(
        model=f"openai:borealis-270m@{llama_server}",
        temperature=0,
        max_tokens=MAX_TOKENS,
        context_window=N_CTX,
        request_timeout=60,
    )


@pytest.fixture(params=["llama.cpp", "openai"])
def llm(request):
    return request.getfixturevalue("local_llm" if request.param == "llama.cpp" else "server_llm")


@pytest.fixture(scope="module")
def vocab(llama_cpp, gemma_gguf):
    """The model's own tokenizer (no weights), to count what the model should see."""
    return llama_cpp.Llama(str(gemma_gguf), vocab_only=True, verbose=False)


def chat_tokens(vocab, messages: list[dict]) -> int:
    rendered = templates.render([{**m, "content": m["content"].strip()} for m in messages])
    return len(vocab.tokenize(rendered.encode(), add_bos=False, special=True))


def as_dicts(messages) -> list[dict]:
    return [{"role": m.role.value, "content": m.content} for m in messages]


def check_raw(raw: dict, llm: Borealis, prompt_tokens: int) -> None:
    usage = raw["usage"]
    assert usage["prompt_tokens"] == prompt_tokens
    assert 1 <= usage["completion_tokens"] <= MAX_TOKENS
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"]
    assert raw["finish_reason"] in ("stop", "length")
    assert raw["backend"] == ("openai" if llm.model.startswith("openai:") else "llama.cpp")
    assert 0 <= usage["cached_tokens"] < usage["prompt_tokens"]
    # A repeated prompt comes from the cache: its evaluation may take no time at all.
    assert raw["timings"]["prompt_ms"] >= 0 and raw["timings"]["ttft_ms"] > 0
    assert raw["timings"]["source"] in ("llama.cpp", "llama-server")


# -- chat -------------------------------------------------------------------------------


def test_chat(llm, vocab):
    response = llm.chat(MESSAGES)
    assert response.message.role == MessageRole.ASSISTANT
    assert response.message.content and response.delta is None  # delta: streaming only
    check_raw(response.raw, llm, chat_tokens(vocab, as_dicts(MESSAGES)))


async def test_achat(llm, vocab):
    response = await llm.achat(MESSAGES)
    assert response.message.content
    check_raw(response.raw, llm, chat_tokens(vocab, as_dicts(MESSAGES)))


def check_stream(responses, llm, prompt_tokens: int) -> None:
    *pieces, last = responses
    text = "".join(r.delta for r in responses)
    content = lambda r: r.message.content if hasattr(r, "message") else r.text  # noqa: E731
    assert text and content(last) == text
    # Each response holds the text so far; only the last carries usage.
    assert all(
        content(r) == "".join(p.delta for p in responses[: i + 1]) for i, r in enumerate(responses)
    )
    assert all(r.raw is None for r in pieces)
    check_raw(last.raw, llm, prompt_tokens)
    assert last.raw["usage"]["completion_tokens"] >= len([p for p in responses if p.delta])


def test_stream_chat(llm, vocab):
    responses = list(llm.stream_chat(MESSAGES))
    check_stream(responses, llm, chat_tokens(vocab, as_dicts(MESSAGES)))


async def test_astream_chat(llm, vocab):
    responses = [r async for r in await llm.astream_chat(MESSAGES)]
    check_stream(responses, llm, chat_tokens(vocab, as_dicts(MESSAGES)))


# -- completion: one user turn through the chat template; raw text when formatted ---------


def test_complete_applies_the_chat_template(llm, vocab):
    response = llm.complete(PROMPT)
    assert response.text
    check_raw(response.raw, llm, chat_tokens(vocab, [{"role": "user", "content": PROMPT}]))


async def test_acomplete(llm, vocab):
    response = await llm.acomplete(PROMPT)
    assert response.text
    check_raw(response.raw, llm, chat_tokens(vocab, [{"role": "user", "content": PROMPT}]))


def test_stream_complete(llm, vocab):
    responses = list(llm.stream_complete(PROMPT))
    check_stream(responses, llm, chat_tokens(vocab, [{"role": "user", "content": PROMPT}]))


async def test_astream_complete(llm, vocab):
    responses = [r async for r in await llm.astream_complete(PROMPT)]
    check_stream(responses, llm, chat_tokens(vocab, [{"role": "user", "content": PROMPT}]))


def test_formatted_prompt_goes_raw_with_one_bos(llm, vocab):
    raw_tokens = len(vocab.tokenize(COUNTING.encode(), add_bos=True))
    check_raw(llm.complete(COUNTING, formatted=True).raw, llm, raw_tokens)
    responses = list(llm.stream_complete(COUNTING, formatted=True))
    check_stream(responses, llm, raw_tokens)


async def test_formatted_prompt_goes_raw_async(llm, vocab):
    raw_tokens = len(vocab.tokenize(COUNTING.encode(), add_bos=True))
    check_raw((await llm.acomplete(COUNTING, formatted=True)).raw, llm, raw_tokens)
    responses = [r async for r in await llm.astream_complete(COUNTING, formatted=True)]
    check_stream(responses, llm, raw_tokens)


def test_call_options_override_the_llms(llm):
    response = llm.complete(COUNTING, formatted=True, max_tokens=3)
    assert response.raw["usage"]["completion_tokens"] == 3
    assert response.raw["finish_reason"] == "length"


def test_token_counting_handler_reads_usage_from_raw(llm, vocab):
    counter = TokenCountingHandler()
    counting = llm.model_copy(update={"callback_manager": CallbackManager([counter])})
    response = counting.chat(MESSAGES)
    assert counter.prompt_llm_token_count == response.raw["usage"]["prompt_tokens"]
    assert counter.completion_llm_token_count == response.raw["usage"]["completion_tokens"]


# -- structured prediction: decoding held to the schema ---------------------------------


class Verdict(BaseModel):
    """Whether the statement is true."""

    sant: bool


# The grammar bounds a Verdict (a boolean and whitespace, at most 22 characters a gap on
# llama-server) to well under this: the JSON closes whatever the model picks.
VERDICT_TOKENS = 128


VERDICT_PROMPT = PromptTemplate("Er dette sant: {påstand}? Svar med JSON.")


def test_structured_predict(llm):
    verdict = llm.structured_predict(
        Verdict, VERDICT_PROMPT, llm_kwargs={"max_tokens": VERDICT_TOKENS},
        påstand="Oslo er i Norge",
    )
    assert isinstance(verdict, Verdict)


async def test_astructured_predict(llm):
    verdict = await llm.astructured_predict(
        Verdict, VERDICT_PROMPT, llm_kwargs={"max_tokens": VERDICT_TOKENS},
        påstand="Bergen er i Norge",
    )
    assert isinstance(verdict, Verdict)


def test_stream_structured_predict(local_llm):
    partials = list(
        local_llm.stream_structured_predict(
            Verdict, VERDICT_PROMPT, llm_kwargs={"max_tokens": VERDICT_TOKENS},
            påstand="Tromsø er i Norge",
        )
    )
    assert partials and isinstance(partials[-1].sant, bool)


async def test_astream_structured_predict(local_llm):
    stream = await local_llm.astream_structured_predict(
        Verdict, VERDICT_PROMPT, llm_kwargs={"max_tokens": VERDICT_TOKENS},
        påstand="Bodø er i Norge",
    )
    partials = [p async for p in stream]
    assert partials and isinstance(partials[-1].sant, bool)


def test_structured_predict_cut_by_max_tokens_names_it(local_llm):
    # The shortest Verdict, `{"sant":true}`, is more than one token.
    with pytest.raises(StructuredOutputError, match="max_tokens=1"):
        local_llm.structured_predict(
            Verdict, VERDICT_PROMPT, llm_kwargs={"max_tokens": 1}, påstand="Oslo er i Norge"
        )


# -- metadata: from the catalog and the configuration, no network ----------------------


def test_metadata_of_the_configured_model(local_llm, server_llm):
    for llm in (local_llm, server_llm):
        meta = llm.metadata
        assert meta.context_window == N_CTX and meta.num_output == MAX_TOKENS
        assert meta.is_chat_model and not meta.is_function_calling_model
        assert meta.model_name == llm.model


@pytest.mark.parametrize(
    ("model", "context_window"),
    [
        # Our Modelfiles and llama-server presets configure the catalog's context.
        ("borealis:4b", DEFAULT_NUM_CTX["4b"]),
        ("ollama:borealis-open:1b", DEFAULT_NUM_CTX["1b"]),
        ("openai:borealis-open-12b@http://127.0.0.1:9/v1", DEFAULT_NUM_CTX["12b"]),
        ("gemma3", 4096),  # Ollama's own default
        ("openai:some-model@http://127.0.0.1:9/v1", DEFAULT_CONTEXT_WINDOW),
        ("./somewhere/model.gguf", 4096),  # llama.cpp backend's default
    ],
)
def test_metadata_needs_no_server_and_no_model_file(model, context_window):
    # Nothing listens on port 9 and no such file exists: metadata must not look.
    meta = Borealis(model=model).metadata
    assert meta.context_window == context_window
    assert meta.num_output == DEFAULT_NUM_OUTPUTS and meta.is_chat_model


def test_metadata_follows_n_ctx_given_to_llama_cpp():
    llm = Borealis(model="./model.gguf", backend_kwargs={"n_ctx": 1024}, max_tokens=64)
    assert llm.metadata.context_window == 1024 and llm.metadata.num_output == 64


def test_context_window_over_the_servers_is_refused(server_llm):
    too_big = server_llm.model_copy(update={"context_window": 4 * N_CTX})
    with pytest.raises(InvalidRequestError, match="2048"):
        too_big.complete(PROMPT)


# -- errors say what to do ----------------------------------------------------------------


def test_bad_options_fail_at_construction():
    with pytest.raises(InvalidRequestError, match="temperature"):
        Borealis(model="./model.gguf", temperature=-1)
    with pytest.raises(InvalidRequestError, match="options are"):
        Borealis(model="./model.gguf", additional_kwargs={"temprature": 0.5})
    with pytest.raises(InvalidRequestError, match="openai:MODEL@BASE_URL"):
        Borealis(model="openai:no-url")


def test_unknown_call_option_is_refused(local_llm):
    with pytest.raises(InvalidRequestError, match="options are"):
        local_llm.complete(PROMPT, temprature=0.5)


def _png() -> bytes:
    import io

    from PIL import Image

    out = io.BytesIO()
    Image.new("RGB", (8, 6), "red").save(out, format="PNG")
    return out.getvalue()


PNG_BYTES = _png()


def test_images_in_process_without_a_projector_are_refused_naming_the_fix(local_llm):
    message = ChatMessage(
        role=MessageRole.USER,
        blocks=[TextBlock(text="Hva er dette?"), ImageBlock(image=PNG_BYTES)],
    )
    with pytest.raises(InvalidRequestError, match="no vision projector.*borealis pull SIZE"):
        local_llm.chat([message])


def test_image_blocks_become_the_runtimes_image_parts(tmp_path):
    from llama_index.llms.borealis.base import _messages

    path = tmp_path / "bilde.png"
    path.write_bytes(PNG_BYTES)
    blocks = [
        TextBlock(text="Se:"),
        ImageBlock(image=PNG_BYTES),
        ImageBlock(path=path),
        ImageBlock(url="http://127.0.0.1:9/x.png"),
        TextBlock(text="Kva er det?"),
    ]
    [message] = _messages([ChatMessage(role=MessageRole.USER, blocks=blocks)])
    parts = message["content"]
    assert [p["type"] for p in parts] == ["text", "image", "image", "image", "text"]
    assert parts[1]["image"] == PNG_BYTES and parts[2]["image"] == path
    assert parts[3]["image"] == "http://127.0.0.1:9/x.png"  # fetched, with a timeout, later


def test_request_timeout_bounds_a_silent_server():
    # A loopback socket that accepts connections and never answers.
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        url = f"http://127.0.0.1:{silent.getsockname()[1]}/v1"
        llm = Borealis(
            model=f"openai:borealis-270m@{url}",
            request_timeout=0.5,
            backend_kwargs={"max_retries": 0},
        )
        with pytest.raises(BackendTimeoutError, match="0.5 s"):
            llm.complete(PROMPT)


# -- one opened model per (model, arguments) ---------------------------------------------


def test_instances_and_copies_share_the_opened_model(local_llm, gemma_gguf):
    twin = Borealis(model=str(gemma_gguf), context_window=N_CTX, backend_kwargs={"n_threads": 2})
    assert twin._backend() is local_llm._backend() is local_llm.model_copy()._backend()


def test_other_arguments_open_another_model_and_closed_ones_reopen(local_llm, gemma_gguf):
    small = Borealis(
        model=str(gemma_gguf), max_tokens=2, context_window=512, backend_kwargs={"n_threads": 2}
    )
    first = small._backend()
    assert first is not local_llm._backend() and first.n_ctx == 512
    close_shared_models()
    assert small._backend() is not first
    assert small.complete(COUNTING, formatted=True).raw["usage"]["completion_tokens"] == 2
    close_shared_models()  # the small model is not needed again


# -- embeddings --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def embed_model(gemma_gguf):
    return BorealisEmbedding(
        model_name=str(gemma_gguf), backend_kwargs={"n_threads": 2, "n_ctx": 512}
    )


def norm(vector) -> float:
    return math.sqrt(sum(x * x for x in vector))


def test_embeddings_sync(embed_model):
    query = embed_model.get_query_embedding("Hva er en fjord?")
    text = embed_model.get_text_embedding("En fjord er en lang havarm.")
    batch = embed_model.get_text_embedding_batch(["En fjord er en lang havarm.", "Fjell."])
    assert len(query) == len(text) == 640 and len(batch) == 2
    assert all(math.isclose(norm(v), 1.0, rel_tol=1e-4) for v in (query, text, *batch))
    assert batch[0] == pytest.approx(text, abs=1e-3)


async def test_embeddings_async(embed_model):
    query = await embed_model.aget_query_embedding("Hva er en fjord?")
    text = await embed_model.aget_text_embedding("En fjord er en lang havarm.")
    batch = await embed_model.aget_text_embedding_batch(["En fjord er en lang havarm.", "Fjell."])
    assert query == pytest.approx(embed_model.get_query_embedding("Hva er en fjord?"), abs=1e-3)
    assert batch[0] == pytest.approx(text, abs=1e-3) and len(batch[1]) == 640


def test_embedding_instructions_prefix_queries_and_texts(embed_model):
    e5_style = embed_model.model_copy(
        update={"query_instruction": "query: ", "text_instruction": "passage: "}
    )
    assert e5_style.get_query_embedding("fjord") == pytest.approx(
        embed_model.get_text_embedding("query: fjord"), abs=1e-3
    )
    assert e5_style.get_text_embedding("fjord") == pytest.approx(
        embed_model.get_text_embedding("passage: fjord"), abs=1e-3
    )


def test_embedding_model_is_shared(embed_model, gemma_gguf):
    twin = BorealisEmbedding(
        model_name=str(gemma_gguf), backend_kwargs={"n_threads": 2, "n_ctx": 512}
    )
    assert twin._embedder() is embed_model._embedder()


# -- end to end: a Norwegian RAG over the example corpus ----------------------------------


@pytest.fixture(scope="module")
def index(embed_model):
    from llama_index.core import Document, VectorStoreIndex
    from llama_index.core.node_parser import SentenceSplitter

    from borealis_local.corpus import load_corpus

    documents = [
        Document(text=d.text, id_=d.id, metadata={"title": d.title, "language": d.language})
        for d in load_corpus()
    ]
    # One node per document (each is a short paragraph).
    splitter = SentenceSplitter(chunk_size=1024, chunk_overlap=0)
    return VectorStoreIndex.from_documents(
        documents, embed_model=embed_model, transformations=[splitter]
    )


@pytest.fixture
def received(local_llm, monkeypatch):
    """What the runtime is asked, call by call: a thin recording wrapper at its door."""
    backend = local_llm._backend()
    requests = []
    open_request = backend._request

    def recording(*args, **kwargs):
        requests.append(open_request(*args, **kwargs))
        return requests[-1]

    monkeypatch.setattr(backend, "_request", recording)
    return requests


def sources_of(retrieved) -> str:
    """The retrieved nodes as the shared prompts' numbered sources, in retrieval order."""
    return format_sources(
        [n.node.get_content() for n in retrieved],
        titles=[n.node.metadata["title"] for n in retrieved],
    )


def check_rag_prompt(content: str, language: str, retrieved, question: str) -> None:
    """The shared RAG prompt in `language`, with these nodes and the question, exactly."""
    shared = get_prompts(language).rag_answer
    assert content == shared.format(sources=sources_of(retrieved), question=question).strip()
    others = [lang for lang in LANGUAGES if lang != language]
    assert all(get_prompts(lang).rag_answer.split("{")[0] not in content for lang in others)
    # Nodes in retrieval order, the question after them.
    positions = [content.index(n.node.get_content()) for n in retrieved]
    assert positions == sorted(positions) and content.rindex(question) > positions[-1]


QUESTION_NB = "Hvor ligger Nasjonalbiblioteket, og hva samler det?"
QUESTION_NN = "Kvar ligg Mo i Rana, og kva er byen kjend for?"


def test_query_engine_sends_the_norwegian_prompt(index, local_llm, received):
    engine = norwegian_query_engine(
        index, local_llm, language="auto", question=QUESTION_NB, similarity_top_k=2
    )
    expected = index.as_retriever(similarity_top_k=2).retrieve(QUESTION_NB)
    response = engine.query(QUESTION_NB)
    assert [n.node.node_id for n in response.source_nodes] == [n.node.node_id for n in expected]
    (request,) = received  # both nodes fit the context: one call
    (message,) = request.messages
    assert message["role"] == "user"
    check_rag_prompt(message["content"], "nb", expected, QUESTION_NB)
    rendered = templates.render(request.messages)
    assert rendered.endswith(f"{QUESTION_NB}<end_of_turn>\n<start_of_turn>model\n")


async def test_query_engine_answers_nynorsk_in_nynorsk(index, local_llm, received):
    engine = norwegian_query_engine(
        index, local_llm, language="auto", question=QUESTION_NN, similarity_top_k=2
    )
    assert (
        engine.get_prompts()["response_synthesizer:text_qa_template"].metadata["language"] == "nn"
    )
    expected = await index.as_retriever(similarity_top_k=2).aretrieve(QUESTION_NN)
    response = await engine.aquery(QUESTION_NN)
    assert response.response and len(response.source_nodes) == 2
    check_rag_prompt(received[0].messages[0]["content"], "nn", expected, QUESTION_NN)


def history_of(*turns: tuple[str, str]) -> str:
    """The chat history as LlamaIndex's engines write it into the condense prompt."""
    messages = []
    for question, answer in turns:
        messages += [
            ChatMessage(role=MessageRole.USER, content=question),
            ChatMessage(role=MessageRole.ASSISTANT, content=answer),
        ]
    return messages_to_history_str(messages)


def test_condense_plus_context_chat_engine(index, local_llm, received):
    engine = condense_plus_context_chat_engine(
        index,
        local_llm,
        language="auto",
        question=QUESTION_NB,
        retriever_kwargs={"similarity_top_k": 2},
    )
    retriever = index.as_retriever(similarity_top_k=2)

    # First turn: nothing to condense; the context prompt, then the question.
    first = engine.chat(QUESTION_NB)
    (request,) = received
    system, user = request.messages
    assert system["role"] == "system" and user == {"role": "user", "content": QUESTION_NB}
    check_rag_prompt(system["content"], "nb", retriever.retrieve(QUESTION_NB), QUESTION_NB)
    # Borealis folds the system text into the user turn: sources first, question last.
    rendered = templates.render(request.messages)
    assert rendered.index("[1] <kilde") < rendered.rindex(QUESTION_NB)

    # Second turn, streamed: the Norwegian condense prompt, then the answer with history.
    follow_up = "Hvem kan bruke samlingen?"
    received.clear()
    streamed = engine.stream_chat(follow_up)
    answer = "".join(streamed.response_gen)
    condense, answering = received
    assert condense.messages == [
        {
            "role": "user",
            "content": get_prompts("nb")
            .condense_question.format(
                chat_history=history_of((QUESTION_NB, first.response)), question=follow_up
            )
            .strip(),
        }
    ]
    condensed = streamed.sources[0].raw_input["message"]
    system, *turns, last = answering.messages
    assert turns == [
        {"role": "user", "content": QUESTION_NB},
        {"role": "assistant", "content": first.response.strip()},
    ]
    assert last == {"role": "user", "content": follow_up}
    check_rag_prompt(system["content"], "nb", retriever.retrieve(condensed), follow_up)
    assert answer == streamed.response


async def test_condense_question_chat_engine(index, local_llm, received):
    engine = condense_question_chat_engine(
        index, local_llm, language="nn", query_engine_kwargs={"similarity_top_k": 1}
    )
    first = await engine.achat(QUESTION_NN)
    follow_up = "Kven bur der?"
    second = await engine.achat(follow_up)
    *_, condense, answering = received
    assert condense.messages == [
        {
            "role": "user",
            "content": get_prompts("nn")
            .condense_question.format(
                chat_history=history_of((QUESTION_NN, first.response)), question=follow_up
            )
            .strip(),
        }
    ]
    (tool_output,) = second.sources
    condensed = tool_output.raw_input["query"]
    retrieved = index.as_retriever(similarity_top_k=1).retrieve(condensed)
    check_rag_prompt(answering.messages[0]["content"], "nn", retrieved, condensed)
