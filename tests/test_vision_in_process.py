"""Images in-process: the stand-in Gemma 3 270M with a synthetic projector through
llama.cpp's libmtmd (runtime/mtmd.py), as LlamaCppBackend(mmproj=...) runs them.

The projector is `synthesize_projector`'s (Gemma 3's architecture for the stand-in's
width of 640, one encoder block instead of 27, random weights): its embeddings are
noise, so nothing here reads the words generated. The tests read the prompt's chunks as
libmtmd split it, the backend's token accounting (usage, cached tokens, encode time)
and its errors. How an image is laid out: the template's text, with the image between
blank lines (runtime/base.IMAGE_BREAK, as Gemma 3's processor writes it), and libmtmd's
<start_of_image>, the image's soft tokens and <end_of_image> in its place.
"""

from __future__ import annotations

import pytest
import vision_support
from vision_support import LAYERS, image, png, text, user

from borealis_local.bench.synth import synthesize_projector
from borealis_local.catalog import CHAT_FORMAT, GEMMA3_VISION, SHAPES
from borealis_local.errors import BackendError, ContextOverflowError, InvalidModelFileError
from borealis_local.runtime.base import normalise_messages
from borealis_local.runtime.llama_cpp import LlamaCppBackend
from borealis_local.runtime.mtmd import ImageChunk, TextChunk
from borealis_local.templates import render

pytestmark = pytest.mark.slow

projector = vision_support.projector

IMAGE_BOUNDS = CHAT_FORMAT.start_of_image + CHAT_FORMAT.end_of_image


@pytest.fixture(scope="module")
def backend(gemma_gguf, llama_cpp, projector):
    # swa_full: every position of the sliding-window layers is kept, so a prompt longer
    # than their 512-token window can be reused from the cache up to where it differs.
    with LlamaCppBackend(gemma_gguf, n_ctx=2048, mmproj=projector, swa_full=True) as backend:
        yield backend


def two_images(first: str, second: str) -> list[dict]:
    return user(text("Første:"), image(png(first)), text("Andre:"), image(png(second)),
                text("Kva skil dei?"))  # fmt: skip


def test_the_image_stands_where_it_was_between_blank_lines(backend):
    messages = normalise_messages(user(text("Hva er dette?"), image(png("red")),
                                       text("Svar kort.")))  # fmt: skip
    with backend.image_prompt(messages) as prompt:
        before, picture, after = prompt.chunks
        assert isinstance(before, TextChunk) and isinstance(after, TextChunk)
        assert isinstance(picture, ImageChunk)
        assert picture.n_tokens == GEMMA3_VISION.tokens_per_image == 256
        # The text around it: the template's, the image between blank lines, libmtmd's
        # start and end tokens on each side of the soft tokens.
        laid_out = render([{"role": "user",
                            "content": f"Hva er dette?\n\n{IMAGE_BOUNDS}\n\nSvar kort."}])
        cut = laid_out.index(IMAGE_BOUNDS) + len(CHAT_FORMAT.start_of_image)
        assert laid_out[:cut].endswith("Hva er dette?\n\n<start_of_image>")
        assert before.tokens == backend.tokenize(laid_out[:cut])
        assert after.tokens == backend.tokenize(laid_out[cut:])
        assert len(prompt) == len(backend.tokenize(laid_out)) + picture.n_tokens


def test_generation_follows_the_image_and_usage_counts_it(backend):
    messages = user(text("Hva er dette?"), image(png("red")), text("Svar kort."))
    expected = backend.count_tokens(messages)
    # (Rendered as it is: the runtime would defuse the control tokens a user writes.)
    without = len(backend.tokenize(render(
        [{"role": "user", "content": f"Hva er dette?\n\n{IMAGE_BOUNDS}\n\nSvar kort."}])))
    assert expected == without + GEMMA3_VISION.tokens_per_image
    answer = backend.chat(messages, max_tokens=3, seed=1, temperature=0.0)
    assert answer.usage.prompt_tokens == expected
    assert answer.usage.cached_tokens == 0  # a seeded call evaluates its prompt whole
    assert 1 <= answer.usage.completion_tokens <= 3
    assert answer.finish_reason in ("stop", "length")
    assert answer.timings.image_encode_ms > 0
    # llama.cpp's prompt time covers the encoding too (the first batch to the last).
    assert answer.timings.prompt_ms >= answer.timings.image_encode_ms
    # A text-only turn afterwards works on the same backend.
    assert backend.chat([{"role": "user", "content": "Hei"}], max_tokens=2).usage.prompt_tokens


def test_two_images_keep_their_order_and_the_cache_knows_each_by_its_content(backend):
    red_blue = backend.chat(two_images("red", "blue"), max_tokens=1, seed=3)
    total = red_blue.usage.prompt_tokens
    with backend.image_prompt(normalise_messages(two_images("red", "blue"))) as prompt:
        kinds = [type(chunk) for chunk in prompt.chunks]
        assert kinds == [TextChunk, ImageChunk, TextChunk, ImageChunk, TextChunk]
        first, second = (c for c in prompt.chunks if isinstance(c, ImageChunk))
        assert first.digest != second.digest  # red, then blue: in the order given
        first_at = len(prompt.chunks[0].keys)
        second_at = first_at + first.n_tokens + len(prompt.chunks[2].keys)
    assert total == len(prompt)

    # The same conversation again: everything but the last token comes from the cache,
    # and no image is encoded again.
    again = backend.chat(two_images("red", "blue"), max_tokens=1)
    assert again.usage.cached_tokens == total - 1
    assert again.timings.image_encode_ms == 0.0
    # A new second image: the cache is reused exactly up to it.
    red_green = backend.chat(two_images("red", "green"), max_tokens=1)
    assert red_green.usage.prompt_tokens == total
    assert red_green.usage.cached_tokens == second_at
    # Swapped: nothing from the first image on.
    green_red = backend.chat(two_images("green", "red"), max_tokens=1)
    assert green_red.usage.cached_tokens == first_at


def test_a_prompt_that_does_not_fit_counts_its_images(backend):
    with pytest.raises(ContextOverflowError) as caught:
        backend.chat(two_images("red", "blue"), max_tokens=8, num_ctx=400)
    assert caught.value.prompt_tokens > 2 * GEMMA3_VISION.tokens_per_image
    assert caught.value.n_ctx == 400


def test_a_projector_that_is_not_one_is_refused_before_llama_cpp_opens_it(
        gemma_gguf, llama_cpp, tmp_path):
    junk = tmp_path / "mmproj-junk.gguf"
    junk.write_bytes(b"GGUF" + b"\0" * 60)
    with pytest.raises(InvalidModelFileError):
        LlamaCppBackend(gemma_gguf, n_ctx=256, mmproj=junk)
    with pytest.raises(InvalidModelFileError, match="clip"):
        LlamaCppBackend(gemma_gguf, n_ctx=256, mmproj=gemma_gguf)  # a text model
    with pytest.raises(InvalidModelFileError):
        LlamaCppBackend(gemma_gguf, n_ctx=256, mmproj=tmp_path / "missing.gguf")


def test_a_projector_of_another_width_is_a_clear_error_and_text_still_works(
        gemma_gguf, llama_cpp, tmp_path):
    wider = synthesize_projector(tmp_path, SHAPES["1b"].hidden, layers=LAYERS)
    with LlamaCppBackend(gemma_gguf, n_ctx=512, mmproj=wider) as backend:
        with pytest.raises(BackendError, match="same model's GGUF repo"):
            backend.chat(user(text("Hva er dette?"), image(png("red"))), max_tokens=1)
        text_only = backend.chat([{"role": "user", "content": "Hei"}], max_tokens=1)
        assert text_only.usage.prompt_tokens > 0
        assert text_only.finish_reason in ("stop", "length")


def test_langchain_and_llama_index_images_run_in_process(gemma_gguf, llama_cpp, projector):
    import base64

    from langchain_core.messages import HumanMessage
    from llama_index.core.base.llms.types import ChatMessage, ImageBlock, TextBlock

    from langchain_borealis import ChatBorealis
    from llama_index.llms.borealis import Borealis

    red = png("red")
    arguments = {"mmproj": str(projector), "n_ctx": 1024}
    with LlamaCppBackend(gemma_gguf, **arguments) as backend:
        expected = backend.count_tokens(user(text("Hva er dette?"), image(red)))

    chat = ChatBorealis(model=str(gemma_gguf), backend_kwargs=arguments, max_tokens=1)
    block = {"type": "image", "base64": base64.b64encode(red).decode(), "mime_type": "image/png"}
    answer = chat.invoke([HumanMessage(content=[{"type": "text", "text": "Hva er dette?"},
                                                block])])  # fmt: skip
    assert answer.usage_metadata["input_tokens"] == expected

    llm = Borealis(model=str(gemma_gguf), backend_kwargs=arguments, max_tokens=1)
    response = llm.chat([ChatMessage(role="user", blocks=[TextBlock(text="Hva er dette?"),
                                                          ImageBlock(image=red)])])
    assert response.raw["usage"]["prompt_tokens"] == expected


def test_langchains_standard_image_test_passes_in_process(gemma_gguf, llama_cpp, projector,
                                                         monkeypatch):
    """langchain-tests' own test_image_inputs (OpenAI's image_url and LangChain's base64
    block), run on the stand-in with its projector. The suite downloads its picture from
    GitHub, which these machines cannot reach: that one download is served a local PNG
    instead; everything after it is the standard test's. (The module's standard suite in
    test_langchain_integration.py runs the stand-in without a projector, so its
    supports_image_inputs stays False; image URLs are not claimed: a fetched URL works,
    but CI cannot show it.)"""
    import httpx
    from langchain_tests.integration_tests import ChatModelIntegrationTests

    from langchain_borealis import ChatBorealis
    from langchain_borealis.chat_models import close_shared_backends

    class WithProjector(ChatModelIntegrationTests):
        chat_model_class = ChatBorealis
        chat_model_params = {"model": str(gemma_gguf), "max_tokens": 2, "num_ctx": 1024,
                             "backend_kwargs": {"mmproj": str(projector)}}  # fmt: skip
        supports_image_inputs = True

    picture = png("blue", (320, 200))
    downloads = []

    def local_get(url, **kwargs):
        downloads.append(url)
        return httpx.Response(200, content=picture, request=httpx.Request("GET", url))

    monkeypatch.setattr(httpx, "get", local_get)
    suite = WithProjector()
    try:
        suite.test_image_inputs(ChatBorealis(**suite.chat_model_params))
    finally:
        close_shared_backends()
    assert len(downloads) == 1


def test_a_projector_beside_the_model_is_found_when_the_model_is_opened(
        gemma_gguf, llama_cpp, projector, tmp_path):
    from hub_support import make_projector

    from borealis_local.runtime.registry import open_backend

    (tmp_path / "model.gguf").symlink_to(gemma_gguf)
    with open_backend(str(tmp_path / "model.gguf"), n_ctx=256) as alone:
        assert alone.mmproj is None
    # A synthetic projector (random weights) is never taken by itself...
    (tmp_path / projector.name).symlink_to(projector)
    with open_backend(str(tmp_path / "model.gguf"), n_ctx=256) as beside:
        assert beside.mmproj is None
    # ...a projector of another width neither; one for the model's width is.
    make_projector(tmp_path / "mmproj-other-F16.gguf", projection_dim=SHAPES["1b"].hidden)
    fitting = make_projector(tmp_path / "mmproj-model-F16.gguf",
                             projection_dim=SHAPES["270m"].hidden)
    with open_backend(str(tmp_path / "model.gguf"), n_ctx=256) as beside:
        assert beside.mmproj == fitting
    with open_backend(str(tmp_path / "model.gguf"), n_ctx=256, mmproj=None) as declined:
        assert declined.mmproj is None
