"""Norwegian (Bokmål, Nynorsk) and English prompts for LlamaIndex.

The prompt text is the project's shared prompt data (`borealis_local.prompts`, one data
file per language, shared with the LangChain integration). Here its variables are only
renamed to the names LlamaIndex fills (`{sources}` -> `{context_str}`, `{question}` ->
`{query_str}`, …); no prompt text is written in Python.

- `prompt_templates(language)`: the LlamaIndex `PromptTemplate`s in one language.
- `apply_norwegian_prompts(query_engine, language)`: sets them on a query engine through
  `update_prompts` (`response_synthesizer:text_qa_template`, `…:refine_template`,
  `…:summary_template`).
- `NumberedSources()`: a node postprocessor that writes each retrieved node as the
  prompts expect their sources, numbered and marked (`[1] <kilde tittel="…">…</kilde>`,
  `borealis_local.prompts.format_sources`), so `[1]` in an answer names a node and a
  node's text cannot pass for instructions. LlamaIndex joins node texts with a blank
  line, as `format_sources` joins its blocks: `{context_str}` is exactly its output.
- `norwegian_query_engine(index, llm, language=…)`,
  `condense_plus_context_chat_engine(index, llm, language=…)` and
  `condense_question_chat_engine(index, llm, language=…)` build engines with both (chat
  engines take their prompts in their constructors).

`language` is "nb", "nn", "en" or "auto"; "auto" detects it from `question`
(`borealis_local.prompts.resolve_language`).

CondensePlusContextChatEngine puts its context prompt in a system message and the
question in the user message after it; Borealis folds the system message into the
user turn, so the model reads the instructions, the sources, then the question, last.
The shared RAG prompt ends with the question itself, so the question is said twice:
once with the sources, once as the turn's last words.
"""

from __future__ import annotations

import string
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from llama_index.core.bridge.pydantic import Field
from llama_index.core.postprocessor.types import BaseNodePostprocessor
from llama_index.core.prompts import PromptTemplate, PromptType
from llama_index.core.schema import MetadataMode, NodeWithScore, QueryBundle

from borealis_local.errors import BorealisError, InvalidRequestError
from borealis_local.prompts import format_sources, get_prompts, resolve_language

# The shared templates' variables, renamed as LlamaIndex fills them.
_RAG = {"sources": "context_str", "question": "query_str"}
_REFINE = {"question": "query_str", "existing_answer": "existing_answer", "source": "context_msg"}
_CONDENSE = {"chat_history": "chat_history", "question": "question"}
_SUMMARY = {"text": "context_str"}

# LlamaIndex prompt -> (shared template, renaming, LlamaIndex's prompt type).
_SOURCES: dict[str, tuple[str, Mapping[str, str], PromptType]] = {
    "text_qa": ("rag_answer", _RAG, PromptType.QUESTION_ANSWER),
    "refine": ("refine", _REFINE, PromptType.REFINE),
    "tree_summarize": ("rag_answer", _RAG, PromptType.SUMMARY),
    "summary": ("summarise", _SUMMARY, PromptType.SUMMARY),
    "condense_question": ("condense_question", _CONDENSE, PromptType.CUSTOM),
    "context": ("rag_answer", _RAG, PromptType.CUSTOM),
    "context_refine": ("refine", _REFINE, PromptType.CUSTOM),
}

# A query engine's prompt (the part of its key after the last ":") -> ours that may
# replace it; the one whose variables are the ones LlamaIndex's own prompt has wins.
_QUERY_ENGINE_PROMPTS = {
    "text_qa_template": ("text_qa",),
    "refine_template": ("refine",),
    "summary_template": ("tree_summarize", "summary"),
}


@dataclass(frozen=True)
class PromptTemplates:
    """The LlamaIndex prompts in one language."""

    language: str
    text_qa: PromptTemplate  # {context_str} {query_str}: response synthesizers
    refine: PromptTemplate  # {query_str} {existing_answer} {context_msg}
    tree_summarize: PromptTemplate  # {context_str} {query_str}: tree_summarize mode
    summary: PromptTemplate  # {context_str}: summaries (TreeIndex, DocumentSummaryIndex)
    condense_question: PromptTemplate  # {chat_history} {question}: both chat engines
    context: PromptTemplate  # CondensePlusContextChatEngine's context_prompt
    context_refine: PromptTemplate  # … its context_refine_prompt
    system: str | None  # the shared system prompt, if the data sets one


def prompt_templates(language: str = "nb", *, question: str | None = None) -> PromptTemplates:
    """The LlamaIndex prompts in `language` (nb, nn, en; "auto": `question`'s)."""
    language = _resolve(language, question)
    shared = get_prompts(language)
    templates = {
        name: _template(getattr(shared, source), renames, kind, language, source)
        for name, (source, renames, kind) in _SOURCES.items()
    }
    return PromptTemplates(language=language, system=shared.system, **templates)


def apply_norwegian_prompts(
    query_engine: Any, language: str = "nb", *, question: str | None = None
) -> dict[str, PromptTemplate]:
    """Put the prompts in `language` on a query engine; returns what was set, by key.

    The prompts cite numbered sources: build the engine with
    `node_postprocessors=[NumberedSources()]` (as `norwegian_query_engine` does).
    Prompts of other kinds (the multimodal `chat_content_*` ones, which Borealis's
    text-only models never use) stay as they are.
    """
    templates = prompt_templates(language, question=question)
    chosen = {}
    for key, current in query_engine.get_prompts().items():
        names = _QUERY_ENGINE_PROMPTS.get(key.rsplit(":", 1)[-1])
        if names is not None:
            chosen[key] = _matching(key, current, [getattr(templates, n) for n in names])
    query_engine.update_prompts(chosen)
    return chosen


class NumberedSources(BaseNodePostprocessor):
    """Writes each node as a numbered source block, `[n] <kilde tittel="…">…</kilde>`,
    in retrieval order. The nodes are copies: the index keeps its own."""

    title_key: str = Field(default="title", description="The metadata key of a node's title.")

    @classmethod
    def class_name(cls) -> str:
        return "NumberedSources"

    def _postprocess_nodes(
        self, nodes: list[NodeWithScore], query_bundle: QueryBundle | None = None
    ) -> list[NodeWithScore]:
        numbered = []
        for number, scored in enumerate(nodes, start=1):
            node = scored.node.model_copy()
            title = node.metadata.get(self.title_key)
            text = node.get_content(metadata_mode=MetadataMode.NONE)
            node.set_content(format_sources([text], titles=[title], start=number))
            node.excluded_llm_metadata_keys = list(node.metadata)  # the title is in the block
            numbered.append(NodeWithScore(node=node, score=scored.score))
        return numbered


def norwegian_query_engine(
    index: Any,
    llm: Any = None,
    *,
    language: str = "nb",
    question: str | None = None,
    **kwargs: Any,
):
    """`index.as_query_engine(llm=llm, **kwargs)` with numbered sources and the prompts
    in `language`."""
    kwargs["node_postprocessors"] = _with_numbered_sources(kwargs.get("node_postprocessors"))
    query_engine = index.as_query_engine(llm=llm, **kwargs)
    apply_norwegian_prompts(query_engine, language, question=question)
    return query_engine


def condense_plus_context_chat_engine(
    index: Any,
    llm: Any = None,
    *,
    language: str = "nb",
    question: str | None = None,
    retriever_kwargs: Mapping[str, Any] | None = None,
    **kwargs: Any,
):
    """A CondensePlusContextChatEngine over `index` (or a retriever) with numbered
    sources and the prompts in `language`; `kwargs` go to its `from_defaults`."""
    from llama_index.core.chat_engine import CondensePlusContextChatEngine

    templates = prompt_templates(language, question=question)
    kwargs.setdefault("system_prompt", templates.system)
    kwargs["node_postprocessors"] = _with_numbered_sources(kwargs.get("node_postprocessors"))
    retriever = index
    if hasattr(index, "as_retriever"):
        retriever = index.as_retriever(**(retriever_kwargs or {}))
    return CondensePlusContextChatEngine.from_defaults(
        retriever=retriever,
        llm=llm,
        context_prompt=templates.context,
        context_refine_prompt=templates.context_refine,
        condense_prompt=templates.condense_question,
        **kwargs,
    )


def condense_question_chat_engine(
    index: Any,
    llm: Any = None,
    *,
    language: str = "nb",
    question: str | None = None,
    query_engine_kwargs: Mapping[str, Any] | None = None,
    **kwargs: Any,
):
    """A CondenseQuestionChatEngine over `index` (or a query engine, whose prompts are
    then replaced) that condenses and answers in `language`; `kwargs` go to its
    `from_defaults`."""
    from llama_index.core.chat_engine import CondenseQuestionChatEngine

    templates = prompt_templates(language, question=question)
    if hasattr(index, "as_query_engine"):
        query_engine = norwegian_query_engine(
            index, llm, language=templates.language, **(query_engine_kwargs or {})
        )
    else:
        query_engine = index
        apply_norwegian_prompts(query_engine, templates.language)
    return CondenseQuestionChatEngine.from_defaults(
        query_engine=query_engine,
        condense_question_prompt=templates.condense_question,
        llm=llm,
        **kwargs,
    )


# -- helpers ----------------------------------------------------------------------------


def _resolve(language: str, question: str | None) -> str:
    if language == "auto" and question is None:
        raise InvalidRequestError(
            'language="auto" detects the language from a question: pass question=…, '
            "or choose nb, nn or en"
        )
    return resolve_language(language, question or "")


def _template(
    text: str, renames: Mapping[str, str], kind: PromptType, language: str, source: str
) -> PromptTemplate:
    """A shared template (str.format style) as a LlamaIndex one, variables renamed.

    LlamaIndex fills `{name}` and has no escape for literal braces, so the shared
    data's doubled braces come out single; a brace that would then read as a variable,
    or a variable missing or unknown, is an error in the data.
    """
    parts = []
    for literal, field, spec, conversion in string.Formatter().parse(text):
        parts.append(literal)
        if field is None:
            continue
        if field not in renames or spec or conversion:
            raise BorealisError(
                f"the {language} prompt {source!r} uses {{{field}}}: it takes only "
                + ", ".join(f"{{{name}}}" for name in renames)
            )
        parts.append("{" + renames[field] + "}")
    template = PromptTemplate(
        "".join(parts), prompt_type=kind, metadata={"language": language, "source": source}
    )
    if set(template.template_vars) != set(renames.values()):
        raise BorealisError(
            f"the {language} prompt {source!r} gives LlamaIndex the variables "
            f"{sorted(template.template_vars)}, not {sorted(renames.values())}"
        )
    return template


def _matching(key: str, current: Any, candidates: list[PromptTemplate]) -> PromptTemplate:
    """Ours among `candidates` that has exactly the variables LlamaIndex fills in the
    prompt it replaces; LlamaIndex changing them is an error, not a silent gap."""
    wanted = set(current.template_vars)
    for template in candidates:
        if set(template.template_vars) == wanted:
            return template
    raise BorealisError(
        f"the query engine's {key!r} takes {sorted(wanted)}, which no Borealis prompt "
        "has: this LlamaIndex version is not supported by apply_norwegian_prompts"
    )


def _with_numbered_sources(postprocessors: list | None) -> list:
    postprocessors = list(postprocessors or [])
    if not any(isinstance(p, NumberedSources) for p in postprocessors):
        postprocessors.append(NumberedSources())  # last: number what reaches the model
    return postprocessors


__all__ = [
    "NumberedSources",
    "PromptTemplates",
    "apply_norwegian_prompts",
    "condense_plus_context_chat_engine",
    "condense_question_chat_engine",
    "norwegian_query_engine",
    "prompt_templates",
]
