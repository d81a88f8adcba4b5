"""Template parity: Jinja (jinja2 sandbox and llama-cpp-python's formatter) against
Go's own text/template with Ollama's data model, and both against Google's reference
Gemma 3 template wherever it defines the result."""

from __future__ import annotations

import random
from itertools import pairwise
from pathlib import Path

import llama_server_support as support
import pytest
from chat_corpus import corpus, in_reference_domain, string_form, typed, typed_corpus
from jinja2.sandbox import ImmutableSandboxedEnvironment

from borealis_local import templates
from borealis_local.catalog import CHAT_FORMAT
from borealis_local.errors import BorealisError

CORPUS = corpus()
llama_server_binary = support.llama_server_binary
llama_server_process = support.llama_server_process
BOS = CHAT_FORMAT.bos
REFERENCE = (Path(__file__).parent / "fixtures" / "gemma3_reference.jinja").read_text()


def _reference_render(messages, add_generation_prompt):
    def fail(message):
        raise ValueError(message)

    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True)
    return env.from_string(REFERENCE).render(
        messages=messages,
        bos_token=BOS,
        add_generation_prompt=add_generation_prompt,
        raise_exception=fail,
    )


@pytest.fixture(scope="module")
def go_rendered(go_renderer):
    return go_renderer.render(templates.ollama_template(), CORPUS)


def test_corpus_covers_the_hard_cases():
    """The corpus must hold what the parity claims are about, or the tests prove little."""
    roles = [[m["role"] for m in conv] for conv in CORPUS]
    assert len(CORPUS) >= 500
    assert sum(r.count("system") >= 2 for r in roles) >= 50
    assert sum(any(a == b != "system" for a, b in pairwise(r)) for r in roles) >= 100
    assert sum(bool(r) and r[-1] == "assistant" for r in roles) >= 100
    assert sum(in_reference_domain(c) for c in CORPUS) >= 200
    contents = [m["content"] for conv in CORPUS for m in conv]
    assert any(c == "" for c in contents) and any(len(c) > 2000 for c in contents)
    assert any(c != c.strip() for c in contents) and any("æ" in c or "ø" in c for c in contents)


def test_jinja_equals_go_on_the_whole_corpus(go_rendered):
    mismatches = [
        i for i, (conv, go) in enumerate(zip(CORPUS, go_rendered, strict=True))
        if templates.render(conv) != BOS + go
    ]
    assert mismatches == [], f"{len(mismatches)} conversations differ, first: {mismatches[:5]}"


@pytest.mark.parametrize("trim", [True, False])
def test_jinja_output_does_not_depend_on_whitespace_options(trim):
    env = ImmutableSandboxedEnvironment(trim_blocks=trim, lstrip_blocks=trim)
    compiled = env.from_string(templates.jinja_template())
    for conv in CORPUS[:200]:
        rendered = compiled.render(messages=conv, bos_token=BOS, add_generation_prompt=True)
        assert rendered == templates.render(conv)


def test_llama_cpp_python_formatter_renders_the_same(llama_cpp, go_rendered):
    from llama_cpp.llama_chat_format import Jinja2ChatFormatter

    formatter = Jinja2ChatFormatter(
        template=templates.jinja_template(), bos_token=BOS, eos_token=CHAT_FORMAT.end_of_turn
    )
    for conv, go in zip(CORPUS, go_rendered, strict=True):
        response = formatter(messages=conv)
        assert response.prompt == BOS + go
        assert response.added_special  # llama-cpp-python then adds no BOS of its own


def test_both_equal_googles_reference_where_it_is_defined(go_rendered):
    checked = 0
    for conv, go in zip(CORPUS, go_rendered, strict=True):
        if not in_reference_domain(conv):
            continue
        ours = templates.render(conv)
        assert ours == BOS + go
        if conv[-1]["role"] == "user":
            assert ours == _reference_render(conv, add_generation_prompt=True)
        else:
            # We leave a final assistant turn open for continuation; Google closes it.
            closed = _reference_render(conv, add_generation_prompt=False)
            assert ours + CHAT_FORMAT.end_of_turn + "\n" == closed
        checked += 1
    assert checked >= 200


# Exact renderings of the semantics README states, one case each.
CASES = {
    "one user turn": (
        [{"role": "user", "content": "Hei"}],
        "<start_of_turn>user\nHei<end_of_turn>\n<start_of_turn>model\n",
    ),
    "system messages anywhere fold into the first user turn, in order": (
        [
            {"role": "user", "content": "a"},
            {"role": "system", "content": "S1"},
            {"role": "assistant", "content": "b"},
            {"role": "system", "content": "S2"},
            {"role": "user", "content": "c"},
        ],
        "<start_of_turn>user\nS1\n\nS2\n\na<end_of_turn>\n<start_of_turn>model\nb<end_of_turn>\n"
        "<start_of_turn>user\nc<end_of_turn>\n<start_of_turn>model\n",
    ),
    "runs of one role merge, also across a system message": (
        [
            {"role": "user", "content": "a"},
            {"role": "user", "content": "b"},
            {"role": "system", "content": "S"},
            {"role": "user", "content": "c"},
        ],
        "<start_of_turn>user\nS\n\na\n\nb\n\nc<end_of_turn>\n<start_of_turn>model\n",
    ),
    "a final assistant message stays open": (
        [{"role": "user", "content": "Skriv"}, {"role": "assistant", "content": "Det var"}],
        "<start_of_turn>user\nSkriv<end_of_turn>\n<start_of_turn>model\nDet var",
    ),
    "system before an assistant opener gets a user turn of its own": (
        [{"role": "system", "content": "S"}, {"role": "assistant", "content": "A"}],
        "<start_of_turn>user\nS\n\n<end_of_turn>\n<start_of_turn>model\nA",
    ),
    "only a system message": (
        [{"role": "system", "content": "S"}],
        "<start_of_turn>user\nS\n\n<end_of_turn>\n<start_of_turn>model\n",
    ),
    "no messages": ([], "<start_of_turn>model\n"),
}


@pytest.mark.parametrize("name", list(CASES))
def test_stated_semantics(name, go_renderer):
    messages, expected = CASES[name]
    assert templates.render(messages) == BOS + expected
    assert go_renderer.render(templates.ollama_template(), [messages]) == [expected]


def test_generation_prompt_can_be_left_out():
    rendered = templates.render([{"role": "user", "content": "Hei"}], add_generation_prompt=False)
    assert rendered == "<bos><start_of_turn>user\nHei<end_of_turn>\n"


def test_jinja_rejects_roles_gemma_has_no_turn_for():
    with pytest.raises(BorealisError, match="not tool"):
        templates.render([{"role": "tool", "content": "{}"}])


def test_go_template_is_in_ollamas_chat_mode(go_renderer):
    """Ollama renders a template that never names .Messages in legacy prompt mode."""
    with pytest.raises(RuntimeError, match="legacy"):
        go_renderer.render("{{ .Prompt }}", [[{"role": "user", "content": "x"}]])


# -- typed content: a list of parts, as transformers and OpenAI-style clients send it -------

TYPED = typed_corpus()


def _google_or_closed(conv):
    """Google's rendering, and ours must equal it (a final assistant turn left open)."""
    if conv[-1]["role"] == "user":
        return _reference_render(conv, add_generation_prompt=True), ""
    return _reference_render(conv, add_generation_prompt=False), CHAT_FORMAT.end_of_turn + "\n"


def test_typed_corpus_covers_images_and_split_text():
    parts = [p for conv in TYPED for m in conv for p in m["content"]]
    assert len(TYPED) >= 500 and sum(p["type"] == "image" for p in parts) >= 300
    assert sum(len(m["content"]) > 1 for conv in TYPED for m in conv) >= 300


def test_typed_content_renders_as_googles_reference():
    for conv in TYPED:
        expected, closing = _google_or_closed(conv)
        assert templates.render(conv) + closing == expected


def test_typed_content_in_llama_cpp_pythons_formatter(llama_cpp):
    from llama_cpp.llama_chat_format import Jinja2ChatFormatter

    formatter = Jinja2ChatFormatter(
        template=templates.jinja_template(), bos_token=BOS, eos_token=CHAT_FORMAT.end_of_turn
    )
    for conv in TYPED:
        assert formatter(messages=conv).prompt == templates.render(conv)


def test_a_typed_conversation_without_images_renders_as_its_string_form():
    rng = random.Random(7)
    for conv in CORPUS:
        if not conv or not in_reference_domain(conv):
            continue
        text_only = typed(conv, rng, images=False)
        assert templates.render(text_only) == templates.render(string_form(text_only))
        single = [{"role": m["role"], "content": [{"type": "text", "text": m["content"]}]}
                  for m in conv]
        assert templates.render(single) == templates.render(conv)


def test_an_image_part_stands_where_the_image_stood():
    conv = [{"role": "user", "content": [
        {"type": "text", "text": "Før "}, {"type": "image"}, {"type": "text", "text": " midt"},
        {"type": "image"}, {"type": "text", "text": "etter"}]}]  # fmt: skip
    assert templates.render(conv) == (
        f"{BOS}<start_of_turn>user\nFør<start_of_image>midt<start_of_image>etter"
        "<end_of_turn>\n<start_of_turn>model\n"
    )


@pytest.mark.slow
def test_typed_content_in_llama_cpps_own_jinja_engine(llama_server_process):
    # llama-server renders with llama.cpp's C++ Jinja engine; /apply-template returns the
    # prompt without BOS (it adds BOS when tokenising). Text parts only: image parts need
    # a projector loaded to be accepted at all.
    rng = random.Random(11)
    for conv in CORPUS[1:80:2]:  # reference-shaped ones
        if conv[-1]["role"] != "user":
            continue
        text_only = typed(conv, rng, images=False)
        prompt = llama_server_process.post("/apply-template", {"messages": text_only})["prompt"]
        assert prompt == templates.render(text_only, bos_token="")
