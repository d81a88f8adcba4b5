"""Embeddings from a local runtime: real llama.cpp vectors on the stand-in model (not a
trained embedding model: these tests check plumbing, never semantic quality)."""

from __future__ import annotations

import math
import socket

import pytest

from borealis_local.errors import InvalidRequestError, ServerUnavailableError
from borealis_local.runtime.llama_cpp import LlamaCppEmbedder
from borealis_local.runtime.registry import open_embedder

pytestmark = pytest.mark.slow

TEXTS = ["Nasjonalbiblioteket ligger i Mo i Rana.", "Kva er dugnad?", "Fjorden er djup."]


@pytest.fixture(scope="module")
def embedder(gemma_gguf):
    with open_embedder(str(gemma_gguf), n_ctx=256, n_threads=2) as embedder:
        yield embedder


def test_one_normalised_vector_per_text(embedder):
    vectors = embedder.embed(TEXTS)
    assert isinstance(embedder, LlamaCppEmbedder)
    assert len(vectors) == 3 and {len(v) for v in vectors} == {640}  # Gemma 3 270M width
    for vector in vectors:
        assert math.isclose(sum(x * x for x in vector), 1.0, rel_tol=1e-5)
    assert vectors[0] != vectors[1]


def test_a_text_embeds_the_same_alone_and_in_a_batch(embedder):
    alone = embedder.embed(TEXTS[1:2])[0]
    batched = embedder.embed(TEXTS)
    # llama.cpp's arithmetic varies a little with the batch it runs in: compare angles.
    cosine = sum(a * b for a, b in zip(alone, batched[1], strict=True))
    assert cosine > 0.999
    assert cosine > sum(a * b for a, b in zip(alone, batched[0], strict=True))


async def test_async_matches_sync(embedder):
    assert await embedder.aembed(TEXTS[:1]) == embedder.embed(TEXTS[:1])


def test_bad_input_is_a_clear_error(embedder):
    assert embedder.embed([]) == []
    with pytest.raises(InvalidRequestError, match="list of texts"):
        embedder.embed("not a list")
    with pytest.raises(InvalidRequestError, match="does not fit the embedding context of 256"):
        embedder.embed(["ord " * 400])


@pytest.fixture
def closed_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.mark.parametrize("name", ["ollama:bge-m3", "openai:bge-m3@http://127.0.0.1:{port}/v1"])
def test_servers_that_are_down_say_so(name, closed_port):
    kwargs = {"host": f"http://127.0.0.1:{closed_port}"} if name.startswith("ollama") else {}
    with open_embedder(name.format(port=closed_port), timeout=5, **kwargs) as embedder:
        with pytest.raises(ServerUnavailableError):
            embedder.embed(["Hei"])
