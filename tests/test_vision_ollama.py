"""Images through Ollama: OllamaBackend against the Ollama double's v0.30 profile, which
takes a message's `images` as Ollama v0.30+ does (server/prompt.go imageTaggedMessages,
then llm/llama_server.go's media marker; tests/ollama_double.py says how) and runs them
through libmtmd with a synthetic projector (the real architecture for the stand-in's
width, one encoder block, random weights) on the stand-in Gemma 3 270M.

The image embeddings are noise: nothing here reads the words generated; the tests read
the request Ollama gets, the prompt the double evaluated, usage and the refusals.
"""

from __future__ import annotations

import hashlib
import warnings

import pytest
import vision_support
from ollama_double import OllamaDouble
from vision_support import image, png, text, user

from borealis_local import templates
from borealis_local.catalog import get_model
from borealis_local.errors import ContextOverflowError, InvalidRequestError
from borealis_local.ollama_install import create_model
from borealis_local.runtime.llama_cpp import LlamaCppBackend
from borealis_local.runtime.ollama import OllamaBackend

ollama = pytest.importorskip("ollama")

pytestmark = pytest.mark.slow

projector = vision_support.projector

TIMEOUT = 300  # an image encodes in seconds, on a loaded two-core machine more
PROFILE = "ollama-0.30"  # Ollama on llama-server, as every current Ollama is


@pytest.fixture(scope="module")
def double(go_renderer, llama_cpp, tmp_path_factory):
    with OllamaDouble(go_renderer, home=tmp_path_factory.mktemp("ollama-double"),
                      profile=PROFILE) as server:  # fmt: skip
        yield server


@pytest.fixture(scope="module")
def client(double):
    with ollama.Client(host=double.url, timeout=TIMEOUT) as official:
        yield official


@pytest.fixture(scope="module")
def seeing(double, client, gemma_gguf, projector):
    """The stand-in with its projector, as Ollama makes a model of a GGUF and an mmproj
    (a projector layer beside the model's)."""
    files = {"stand-in.gguf": client.create_blob(gemma_gguf),
             "mmproj.gguf": client.create_blob(projector)}  # fmt: skip
    client.create("seeing", files=files, template=templates.ollama_template())
    return "seeing"


@pytest.fixture(scope="module")
def blind(double, gemma_gguf):
    """The stand-in made by `borealis create` without a projector, under a name that is
    not a text-only catalog size's (those are refused before Ollama is asked)."""
    list(create_model(get_model("270m"), from_path=gemma_gguf, tag="blind", host=double.url,
                      timeout=TIMEOUT))  # fmt: skip
    return "blind"


@pytest.fixture(scope="module")
def in_process_count(gemma_gguf, llama_cpp, projector):
    """Prompt tokens as the in-process backend counts a chat (images included)."""
    backend = LlamaCppBackend(gemma_gguf, n_ctx=2048, mmproj=projector)
    yield backend.count_tokens
    backend.close()


def last_chat(double) -> dict:
    return double.requests_to("/api/chat")[-1].body


def test_images_go_as_ollamas_images_with_img_where_each_stood(double, seeing, in_process_count):
    red = png("red")
    messages = user(text("Hva er dette?"), image(red), text("Svar kort."))
    with OllamaBackend(seeing, host=double.url, timeout=TIMEOUT) as backend:
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # the model's GGUF is readable: counted
            answer = backend.chat(messages, max_tokens=2, temperature=0.0)
    sent = last_chat(double)["messages"][-1]
    assert sent["content"] == "Hva er dette?\n\n[img]\n\nSvar kort."
    assert len(sent["images"]) == 1  # base64 of the PNG, as the client sends bytes
    import base64

    assert base64.b64decode(sent["images"][0]) == red
    # Counted here as the in-process backend counts it: the same prompt tokens...
    assert answer.usage.prompt_tokens == in_process_count(messages)
    assert 1 <= answer.usage.completion_tokens <= 2
    # ...and as the double evaluated it (its count, when ours is not there to report).
    double.same_machine = False
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # uncounted: the warning says so
            with OllamaBackend(seeing, host=double.url, timeout=TIMEOUT) as uncounted:
                evaluated = uncounted.chat(messages, max_tokens=1).usage.prompt_tokens
    finally:
        double.same_machine = True
    assert evaluated == in_process_count(messages)
    assert double.evaluated_images == [hashlib.sha256(red).hexdigest()]


def test_two_images_keep_their_order(double, seeing):
    red, blue = png("red"), png("blue")
    with OllamaBackend(seeing, host=double.url, timeout=TIMEOUT) as backend:
        backend.chat(user(text("Første:"), image(red), text("Andre:"), image(blue),
                          text("Kva skil dei?")), max_tokens=1)  # fmt: skip
        assert last_chat(double)["messages"][-1]["content"] == (
            "Første:\n\n[img]\n\nAndre:\n\n[img]\n\nKva skil dei?")
        assert double.evaluated_images == [hashlib.sha256(x).hexdigest() for x in (red, blue)]
        backend.chat(user(text("Første:"), image(blue), text("Andre:"), image(red),
                          text("Kva skil dei?")), max_tokens=1)  # fmt: skip
        assert double.evaluated_images == [hashlib.sha256(x).hexdigest() for x in (blue, red)]


def test_a_prompt_with_images_that_does_not_fit_is_not_sent(double, seeing):
    sent = len(double.requests_to("/api/chat"))
    with OllamaBackend(seeing, host=double.url, timeout=TIMEOUT) as backend:
        with pytest.raises(ContextOverflowError, match="was not sent") as caught:
            backend.chat(user(text("Første:"), image(png("red")), text("Andre:"),
                              image(png("blue"))), max_tokens=8, num_ctx=400)  # fmt: skip
    assert caught.value.prompt_tokens > 512  # two images of 256 soft tokens each
    assert len(double.requests_to("/api/chat")) == sent


def test_a_model_made_without_its_projector_refuses_images_naming_the_fix(double, blind):
    sent = len(double.requests_to("/api/chat"))
    with OllamaBackend(blind, host=double.url, timeout=TIMEOUT) as backend:
        with pytest.raises(InvalidRequestError, match=r"does not see images.*borealis pull 4b"):
            backend.chat(user(text("Hva er dette?"), image(png("red"))), max_tokens=1)
        # Text still goes through.
        text_only = backend.chat([{"role": "user", "content": "Hei"}], max_tokens=1)
        assert text_only.usage.prompt_tokens > 0
        assert text_only.finish_reason in ("stop", "length")
    assert len(double.requests_to("/api/chat")) == sent + 1


def test_text_that_ollama_would_read_as_an_image_is_refused(double, seeing):
    sent = len(double.requests_to("/api/chat"))
    with OllamaBackend(seeing, host=double.url, timeout=TIMEOUT) as backend:
        for words in ("Se [img] her", "Se [img-0] her"):
            with pytest.raises(InvalidRequestError, match=r"\[img"):
                backend.chat(user(text(words), image(png("red"))), max_tokens=1)
    assert len(double.requests_to("/api/chat")) == sent
