"""Typed message contents in the runtime: text and image parts in one normalised form,
the string form where there is no image, and the refusals."""

from __future__ import annotations

import io

import pytest
from PIL import Image as PILImage

from borealis_local.errors import ImageError, InvalidRequestError
from borealis_local.runtime.base import Backend, has_images, normalise_messages
from borealis_local.runtime.images import Image
from borealis_local.runtime.llama_cpp import LlamaCppBackend
from borealis_local.runtime.ollama import OllamaBackend
from borealis_local.runtime.openai_compat import OpenAIBackend
from borealis_local.templates import render


def png() -> bytes:
    out = io.BytesIO()
    PILImage.new("RGB", (8, 6), "red").save(out, format="PNG")
    return out.getvalue()


def user(content):
    return [{"role": "user", "content": content}]


def test_text_parts_become_the_string_googles_template_makes_of_them():
    typed = user([{"type": "text", "text": "  Hva er "}, {"type": "text", "text": "dugnad? \n"}])
    [message] = normalise_messages(typed)
    assert message["content"] == "Hva erdugnad?"  # trimmed, joined with nothing between
    assert render(normalise_messages(typed)) == render(typed)


def test_image_parts_are_decoded_once_and_keep_their_place():
    data = png()
    url = "data:image/png;base64," + Image(data, "image/png", 8, 6).base64()
    [message] = normalise_messages(user([
        {"type": "text", "text": " Første: "},
        {"type": "image_url", "image_url": {"url": url}},
        {"type": "image_url", "image_url": url},  # the bare-string form some clients send
        {"type": "image", "image": PILImage.new("RGB", (4, 4))},
        {"type": "text", "text": "Kva skil dei?"},
    ]))  # fmt: skip
    kinds = [part["type"] for part in message["content"]]
    assert kinds == ["text", "image", "image", "image", "text"]
    assert message["content"][0]["text"] == "Første:"
    first, second, third = (p["image"] for p in message["content"][1:4])
    assert first.data == second.data == data and (third.width, third.height) == (4, 4)
    assert has_images([message]) and not has_images(normalise_messages(user("tekst")))


def test_control_tokens_in_text_parts_are_defused():
    [message] = normalise_messages(user([{"type": "text", "text": "a<end_of_turn>b"},
                                         {"type": "image", "image": png()}]))  # fmt: skip
    assert "<end_of_turn>" not in message["content"][0]["text"]


@pytest.mark.parametrize(
    ("content", "error", "message"),
    [
        ([{"type": "audio", "audio": "x"}], InvalidRequestError, "give text parts"),
        (["bare string"], InvalidRequestError, "give text parts"),
        ([{"type": "image_url", "image_url": {}}], InvalidRequestError, "has no image"),
        ([{"type": "image", "image": b"junk"}], ImageError, "PNG or JPEG"),
        (42, InvalidRequestError, "text or a list of parts"),
    ],
)
def test_parts_that_are_not_text_or_images_are_refused(content, error, message):
    with pytest.raises(error, match=message):
        normalise_messages(user(content))


def test_a_typed_system_message_takes_one_text_part():
    system = {"role": "system", "content": [{"type": "text", "text": " Vær kort "}]}
    ok = normalise_messages([system, *user("Hei")])
    assert ok[0]["content"] == "Vær kort"
    for parts in ([{"type": "text", "text": "a"}, {"type": "text", "text": "b"}],
                  [{"type": "image", "image": png()}]):  # fmt: skip
        with pytest.raises(InvalidRequestError, match="a system message takes one text part"):
            normalise_messages([{"role": "system", "content": parts}, *user("Hei")])


IMAGE_MESSAGE = [{"type": "text", "text": "Hva er dette?"}, {"type": "image", "image": png()}]


def test_llama_cpp_in_process_without_a_projector_names_the_fix(gemma_gguf, llama_cpp):
    with LlamaCppBackend(gemma_gguf, n_ctx=256) as backend:
        with pytest.raises(InvalidRequestError, match=r"no vision projector.*borealis pull SIZE"
                           r".*mmproj="):
            backend.chat(user(IMAGE_MESSAGE), max_tokens=1)


def test_a_text_only_size_refuses_images_before_calling_anything():
    # Nothing listens on port 9: had the request gone out, it would fail differently.
    for name in ("borealis:1b", "borealis-open:270m"):
        backend = OllamaBackend(name, host="http://127.0.0.1:9")
        with pytest.raises(InvalidRequestError, match=r"text-only model .*`borealis pull 4b"):
            backend.chat(user(IMAGE_MESSAGE), max_tokens=1)
    backend = OpenAIBackend("borealis-1b", "http://127.0.0.1:9/v1")
    with pytest.raises(InvalidRequestError, match="text-only model"):
        backend.chat(user(IMAGE_MESSAGE), max_tokens=1)


class Echo(Backend):
    """A minimal backend: the base class's refusal, before any model is asked."""

    kind = "echo"

    def _stream(self, request):
        raise AssertionError("an image request must not reach the model")


def test_a_refused_image_fails_before_the_model_is_asked():
    with pytest.raises(InvalidRequestError, match="model on echo: this runtime does not take"):
        Echo("model").chat(user([{"type": "text", "text": "Hva?"},
                                 {"type": "image", "image": png()}]))  # fmt: skip


def test_an_image_in_text_is_the_templates_image_between_blank_lines():
    """Where a runtime marks images in the text (libmtmd's marker in-process, Ollama's
    [img]), the text is what the typed template renders with each <start_of_image>
    replaced by the marker between blank lines (base.IMAGE_BREAK): Gemma 3's processor
    layout, on 600 generated conversations."""
    from chat_corpus import typed_corpus

    from borealis_local.catalog import CHAT_FORMAT
    from borealis_local.runtime.base import IMAGE_BREAK, image_text

    marker, picture, checked = "<__image__>", png(), 0
    for conversation in typed_corpus():
        # A system message as its first part (the runtime takes no more than that).
        with_bytes = [{"role": m["role"], "content": m["content"][:1]} if m["role"] == "system"
                      else {"role": m["role"], "content": [
                          {"type": "image", "image": picture} if p["type"] == "image" else p
                          for p in m["content"]]} for m in conversation]  # fmt: skip
        typed = normalise_messages(with_bytes)
        if not has_images(typed):
            continue
        flat = [m if isinstance(m["content"], str)
                else {"role": m["role"], "content": image_text(m["content"], marker)}
                for m in typed]  # fmt: skip
        expected = render(typed).replace(CHAT_FORMAT.start_of_image,
                                         IMAGE_BREAK + marker + IMAGE_BREAK)
        assert render(flat) == expected
        checked += 1
    assert checked >= 200
