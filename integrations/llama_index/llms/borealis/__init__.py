"""Borealis (National Library of Norway) for LlamaIndex: the LLM and Norwegian prompts."""

from llama_index.llms.borealis.base import Borealis, close_shared_models
from llama_index.llms.borealis.prompts import (
    NumberedSources,
    PromptTemplates,
    apply_norwegian_prompts,
    condense_plus_context_chat_engine,
    condense_question_chat_engine,
    norwegian_query_engine,
    prompt_templates,
)

__all__ = [
    "Borealis",
    "NumberedSources",
    "PromptTemplates",
    "apply_norwegian_prompts",
    "close_shared_models",
    "condense_plus_context_chat_engine",
    "condense_question_chat_engine",
    "norwegian_query_engine",
    "prompt_templates",
]
