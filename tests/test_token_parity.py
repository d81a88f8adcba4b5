"""Token parity on the real Gemma 3 tokenizer: what llama.cpp evaluates for a chat
rendered with our Jinja template equals the Go-rendered (Ollama) prompt tokenized
with BOS, and <bos> appears exactly once."""

from __future__ import annotations

import random

import pytest
from chat_corpus import corpus

from borealis_local import templates
from borealis_local.catalog import CHAT_FORMAT

pytestmark = pytest.mark.slow

SAMPLE = 24
MAX_PROMPT_TOKENS = 700


@pytest.fixture(scope="module")
def llm(llama_cpp, gemma_gguf):
    from llama_cpp.llama_chat_format import Jinja2ChatFormatter

    handler = Jinja2ChatFormatter(
        template=templates.jinja_template(),
        bos_token=CHAT_FORMAT.bos,
        eos_token=CHAT_FORMAT.end_of_turn,
    ).to_chat_handler()
    return llama_cpp.Llama(
        model_path=str(gemma_gguf), n_ctx=1024, n_threads=2, chat_handler=handler, verbose=False
    )


def test_special_tokens_have_the_ids_the_catalog_states(llm):
    fmt = CHAT_FORMAT
    for text, token_id in [
        (fmt.bos, fmt.bos_id),
        (fmt.start_of_turn, fmt.start_of_turn_id),
        (fmt.end_of_turn, fmt.end_of_turn_id),
    ]:
        assert llm.tokenize(text.encode(), add_bos=False, special=True) == [token_id]
    assert llm.token_bos() == fmt.bos_id


def test_evaluated_tokens_equal_the_ollama_prompt_tokens(llm, go_renderer):
    conversations = [c for c in corpus() if c]
    random.Random(7).shuffle(conversations)
    go_prompts = go_renderer.render(templates.ollama_template(), conversations)
    checked = 0
    for messages, go_prompt in zip(conversations, go_prompts, strict=True):
        expected = llm.tokenize(go_prompt.encode(), add_bos=True, special=True)
        if len(expected) > MAX_PROMPT_TOKENS:
            continue
        response = llm.create_chat_completion(messages=messages, max_tokens=1, temperature=0)
        n_prompt = response["usage"]["prompt_tokens"]
        evaluated = list(llm.input_ids[:n_prompt])
        assert evaluated == expected
        assert evaluated.count(CHAT_FORMAT.bos_id) == 1 and evaluated[0] == CHAT_FORMAT.bos_id
        checked += 1
        if checked == SAMPLE:
            break
    assert checked == SAMPLE
