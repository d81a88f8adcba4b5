"""The project's Bokmål, Nynorsk and English prompts as LangChain ChatPromptTemplates.

The prompt texts are data in `borealis_local.prompts` (one file per language, shared
with LlamaIndex); this module only wraps them. Every template is one human message;
a system message is added only when asked for (Borealis has its own baked in).

    rag_prompt("nn").invoke({"sources": format_documents(docs), "question": "Kva er …?"})
"""

from __future__ import annotations

from collections.abc import Sequence

from langchain_core.documents import Document
from langchain_core.messages import SystemMessage
from langchain_core.prompts import ChatPromptTemplate

from borealis_local.errors import InvalidRequestError
from borealis_local.prompts import TEMPLATE_VARIABLES, format_sources, get_prompts

PROMPT_NAMES = tuple(TEMPLATE_VARIABLES)


def chat_prompt(
    name: str, language: str = "nb", *, system: str | None = None
) -> ChatPromptTemplate:
    """The ChatPromptTemplate of one shared prompt in one language.

    Args:
        name: `rag_answer` ({sources} {question}), `refine` ({question}
            {existing_answer} {source}), `condense_question` ({chat_history}
            {question}), `summarise`, `title_ingress` or `language_review` ({text}).
        language: `nb`, `nn` or `en`.
        system: an optional system message, used as it is (not a template).
    """
    if name not in TEMPLATE_VARIABLES:
        raise InvalidRequestError(f"no prompt named {name!r}: use one of {', '.join(PROMPT_NAMES)}")
    prompts = get_prompts(language)
    system = system if system is not None else prompts.system
    messages = [SystemMessage(system)] if system else []
    return ChatPromptTemplate.from_messages([*messages, ("human", getattr(prompts, name))])


def rag_prompt(language: str = "nb", *, system: str | None = None) -> ChatPromptTemplate:
    """The RAG answer prompt: numbered sources first ({sources}, see `format_documents`),
    the question last ({question})."""
    return chat_prompt("rag_answer", language, system=system)


def chat_prompts(language: str = "nb") -> dict[str, ChatPromptTemplate]:
    """Every shared prompt of one language, by name."""
    return {name: chat_prompt(name, language) for name in PROMPT_NAMES}


def format_documents(documents: Sequence[Document], *, start: int = 1) -> str:
    """Documents as the prompts' numbered sources ([1] <kilde tittel="…"> … </kilde>),
    numbered from `start`; a document's title comes from its metadata["title"]."""
    return format_sources(
        [doc.page_content for doc in documents],
        titles=[doc.metadata.get("title") for doc in documents],
        start=start,
    )
