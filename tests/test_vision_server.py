"""Images end to end through a real llama-server with `--mmproj` and a synthetic projector.

The server runs the stand-in Gemma 3 270M (text hidden size 640) with a Gemma 3 vision
projector from `synthesize_projector` (the real architecture at reduced depth, random
weights) and our Jinja template. The image embeddings are noise, so nothing here looks
at the words generated: the tests read the server's token accounting (`usage`,
`timings.prompt_n`, `timings.cache_n`) and its errors.

How the image's tokens are counted: llama-server replaces an `image_url` part with a
media marker; libmtmd splits the prompt there and puts `<start_of_image>`, the image's
soft tokens, `<end_of_image>` in its place (tools/mtmd/mtmd.cpp). So a conversation with
an image must take exactly the image's soft tokens more than the same conversation with
`<start_of_image><end_of_image>` written where the image stood. The soft-token count is
clip.cpp's: (image_size / patch_size)^2 / pooling^2, read from the projector's metadata.
"""

from __future__ import annotations

import base64
import io
import json
import urllib.error
import urllib.request

import llama_server_support as support
import pytest

from borealis_local.bench.synth import read_header, synthesize_projector
from borealis_local.catalog import CHAT_FORMAT, GEMMA3_VISION, SHAPES

pytestmark = pytest.mark.slow

llama_server_binary = support.llama_server_binary
llama_server_process = support.llama_server_process

# One encoder block instead of 27: an image encodes in seconds on two cores, and the
# count of tokens it yields does not depend on the depth.
LAYERS = 1
# Encoding 4096 patches and decoding ~260 tokens on a busy 2-core machine.
REQUEST_TIMEOUT_S = 300


@pytest.fixture(scope="module")
def projector(tmp_path_factory):
    folder = tmp_path_factory.mktemp("mmproj")
    path = synthesize_projector(folder, SHAPES["270m"].hidden, layers=LAYERS)
    yield path
    path.unlink(missing_ok=True)


@pytest.fixture(scope="module")
def vision_server(llama_server_binary, gemma_gguf, projector):
    # One slot, so consecutive requests meet the same prompt cache; --swa-full keeps every
    # position of the sliding-window layers, so a prompt longer than the 512-token window
    # can still be reused up to where it differs.
    extra = ("--mmproj", str(projector), "--swa-full")
    with support.start_llama_server(
        llama_server_binary, gemma_gguf, ctx=4096, parallel=1, extra=extra
    ) as server:
        yield server


@pytest.fixture(scope="module")
def image_tokens(projector) -> int:
    """The soft tokens per image, derived as clip.cpp derives them from the file."""
    metadata = read_header(projector).metadata
    side = metadata["clip.vision.image_size"].value // metadata["clip.vision.patch_size"].value
    # clip.cpp's n_merge for the gemma3 projector: 4 unless the file sets a scale factor.
    assert "clip.vision.projector.scale_factor" not in metadata
    return (side // GEMMA3_VISION.pooling) ** 2


def png(color: str, size: tuple[int, int] = (64, 48)) -> str:
    from PIL import Image

    buffer = io.BytesIO()
    Image.new("RGB", size, color).save(buffer, "PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()


def image(url: str) -> dict:
    return {"type": "image_url", "image_url": {"url": url}}


def text(value: str) -> dict:
    return {"type": "text", "text": value}


def chat(server: support.LlamaServer, content, *, max_tokens: int = 2) -> tuple[int, dict]:
    """POST one user message to /v1/chat/completions: (HTTP status, JSON body)."""
    body = {
        "messages": [{"role": "user", "content": content}],
        "max_tokens": max_tokens,
        "temperature": 0.0,
    }
    request = urllib.request.Request(
        f"{server.base_url}/chat/completions",
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=REQUEST_TIMEOUT_S) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def ok(server: support.LlamaServer, content, **options) -> dict:
    status, answer = chat(server, content, **options)
    assert status == 200, answer
    return answer


def token_count(server: support.LlamaServer, prompt: str) -> int:
    """Tokens of a rendered prompt as the server tokenises it (with <bos>, specials parsed)."""
    answer = server.post(
        "/tokenize", {"content": prompt, "add_special": True, "parse_special": True}
    )
    return len(answer["tokens"])


# The image's place in the text, as libmtmd fills it in around the soft tokens.
IMAGE_BOUNDS = CHAT_FORMAT.start_of_image + "<end_of_image>"


def test_an_image_adds_its_soft_tokens_and_generation_follows(vision_server, image_tokens):
    assert image_tokens == GEMMA3_VISION.tokens_per_image == 256
    with_image = ok(vision_server, [text("Hva er dette?"), image(png("red")), text("Svar kort.")])
    without = ok(vision_server, f"Hva er dette?{IMAGE_BOUNDS}Svar kort.")
    assert with_image["usage"]["prompt_tokens"] == without["usage"]["prompt_tokens"] + image_tokens
    # The prompt the server evaluated (minus what it reused from its cache) says the same.
    timings = with_image["timings"]
    assert timings["prompt_n"] + timings["cache_n"] == with_image["usage"]["prompt_tokens"]
    # Generation runs on after the image's tokens.
    assert with_image["usage"]["completion_tokens"] >= 1
    assert with_image["choices"][0]["finish_reason"] in ("stop", "length")


def test_two_images_count_twice_and_keep_their_order(vision_server, image_tokens):
    def two(first: str, second: str) -> list[dict]:
        return [text("Første:"), image(png(first)), text("Andre:"), image(png(second)),
                text("Kva skil dei?")]  # fmt: skip

    bounds = f"Første:{IMAGE_BOUNDS}Andre:{IMAGE_BOUNDS}Kva skil dei?"
    red_blue = ok(vision_server, two("red", "blue"))
    total = red_blue["usage"]["prompt_tokens"]
    assert total == ok(vision_server, bounds)["usage"]["prompt_tokens"] + 2 * image_tokens

    # Where each image begins: the tokens of the rendered prompt up to its
    # <start_of_image>, plus the soft tokens of the images before it.
    prompt = vision_server.post(
        "/apply-template", {"messages": [{"role": "user", "content": bounds}]}
    )["prompt"]
    marker = CHAT_FORMAT.start_of_image
    first_end = prompt.index(marker) + len(marker)
    second_end = prompt.index(marker, first_end) + len(marker)
    first_image_at = token_count(vision_server, prompt[:first_end])
    second_image_at = token_count(vision_server, prompt[:second_end]) + image_tokens

    # The server knows each image by its content and keeps it where it stood: with a
    # new second image, the cached prompt is reused exactly up to the second image...
    red_green = ok(vision_server, two("red", "green"))
    assert red_green["usage"]["prompt_tokens"] == total
    assert red_green["timings"]["cache_n"] == second_image_at
    # ...and with the two swapped, nothing from the first image on (the server may also
    # drop the few tokens before it, starting afresh on a prompt this different).
    green_red = ok(vision_server, two("green", "red"))
    assert green_red["usage"]["prompt_tokens"] == total
    assert green_red["timings"]["cache_n"] <= first_image_at


def test_a_corrupt_image_is_an_http_error_and_the_server_lives_on(vision_server):
    junk = "data:image/png;base64," + base64.b64encode(b"not a picture at all").decode()
    status, answer = chat(vision_server, [text("Hva er dette?"), image(junk)])
    assert status == 400
    assert "image" in answer["error"]["message"].lower()
    assert ok(vision_server, "Hei")["usage"]["completion_tokens"] >= 1


def test_a_server_without_a_projector_refuses_images_naming_it(llama_server_process):
    status, answer = chat(llama_server_process, [text("Hva er dette?"), image(png("red"))])
    assert status >= 400
    assert "mmproj" in answer["error"]["message"]


# --- through the runtime: typed messages with images on an OpenAI-compatible server ---


def backend_for(server: support.LlamaServer):
    from borealis_local.runtime.registry import open_backend

    return open_backend(f"openai:stand-in@{server.base_url}", timeout=REQUEST_TIMEOUT_S)


def test_the_runtime_sends_image_parts_as_the_openai_api_does(vision_server):
    """Our OpenAI backend's request evaluates exactly the prompt the raw API call does
    (two images, one of them a PIL image sent as PNG) when that call puts each image
    between blank lines, as Gemma 3's processor does: the same prompt tokens."""
    from PIL import Image

    red, blue = png("red"), png("blue")
    picture = Image.new("RGB", (64, 48), "blue")  # a PIL image: sent as PNG
    content = [text("Første:"), image(red), text("Andre:"), {"type": "image", "image": picture},
               text("Kva skil dei?")]  # fmt: skip
    raw = [text("Første:\n\n"), image(red), text("\n\nAndre:\n\n"), image(blue),
           text("\n\nKva skil dei?")]  # fmt: skip
    with backend_for(vision_server) as backend:
        answer = backend.chat([{"role": "user", "content": content}], max_tokens=2,
                              temperature=0.0)  # fmt: skip
    expected = ok(vision_server, raw)["usage"]
    assert answer.usage.prompt_tokens == expected["prompt_tokens"]
    assert answer.usage.completion_tokens >= 1


def test_a_server_without_a_projector_is_a_clear_error_naming_the_fix(llama_server_process):
    from borealis_local.errors import InvalidRequestError

    with backend_for(llama_server_process) as backend:
        with pytest.raises(InvalidRequestError, match="takes no images.*--mmproj"):
            backend.chat([{"role": "user", "content": [text("Hva?"), image(png("red"))]}],
                         max_tokens=2)  # fmt: skip


def test_langchain_image_blocks_reach_the_server_as_the_api_would_send_them(vision_server):
    """ChatBorealis only translates: a LangChain standard image block (base64) gives the
    prompt the raw API call with the same image gives."""
    from langchain_core.messages import HumanMessage

    from langchain_borealis import ChatBorealis

    red = png("red")
    llm = ChatBorealis(model=f"openai:stand-in@{vision_server.base_url}", max_tokens=2,
                       temperature=0.0, timeout=REQUEST_TIMEOUT_S)  # fmt: skip
    block = {"type": "image", "base64": red.split(",", 1)[1], "mime_type": "image/png"}
    answer = llm.invoke([HumanMessage(content=[{"type": "text", "text": "Hva er dette?"}, block])])
    expected = ok(vision_server, [text("Hva er dette?\n\n"), image(red), text("\n\n")])["usage"]
    assert answer.usage_metadata["input_tokens"] == expected["prompt_tokens"]


def test_images_in_llama_cpps_own_jinja_engine(vision_server):
    """llama-server's /apply-template with image parts: it joins a message's parts into
    one text (a newline between two text parts, none beside its media marker) and
    renders that with our template (llama.cpp's C++ Jinja engine). What our backend
    sends renders as Gemma 3's processor lays an image out: the trimmed text parts
    joined, each image between blank lines."""
    import random

    from chat_corpus import typed_corpus

    from borealis_local import templates
    from borealis_local.runtime.base import image_text, normalise_messages
    from borealis_local.runtime.openai_compat import _wire_message

    marker = vision_server.get("/props")["media_marker"]
    red = png("red")
    rng = random.Random(5)
    checked = 0
    for conv in rng.sample(typed_corpus(), 60):
        if conv[-1]["role"] != "user" or not any(
            p["type"] == "image" for m in conv for p in m["content"]
        ):
            continue
        # A system message as its first part (the runtime takes no more than that).
        with_urls = [{"role": m["role"], "content": m["content"][:1]} if m["role"] == "system"
                     else {"role": m["role"], "content": [
                         image(red) if p["type"] == "image" else p for p in m["content"]]}
                     for m in conv]  # fmt: skip
        normalised = normalise_messages(with_urls)
        wire = [_wire_message(m) for m in normalised]
        prompt = vision_server.post("/apply-template", {"messages": wire})["prompt"]
        flat = [m if isinstance(m["content"], str)
                else {"role": m["role"], "content": image_text(m["content"], marker)}
                for m in normalised]
        assert prompt == templates.render(flat, bos_token="")
        checked += 1
    assert checked >= 20
