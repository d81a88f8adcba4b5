"""Template parity: Jinja (jinja2 sandbox and llama-cpp-python's formatter) against
Go's own text/template with Ollama's data model, and both against Google's reference
Gemma 3 template wherever it defines the result."""

from __future__ import annotations

from itertools import pairwise
from pathlib import Path

import pytest
from chat_corpus import corpus, in_reference_domain
from jinja2.sandbox import ImmutableSandboxedEnvironment

from borealis_local import templates
from borealis_local.catalog import CHAT_FORMAT
from borealis_local.errors import BorealisError

CORPUS = corpus()
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
