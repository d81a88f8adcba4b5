"""Question answering from retrieved sources, with citations, in LCEL.

    chain = create_rag_chain(retriever, ChatBorealis(model=…))
    result = chain.invoke("Hvor langt fra huset må teltet stå?")
    result["answer"], result["sources"], result["citations"]

The model sees the numbered sources first and the question last, in the question's
language (Bokmål, Nynorsk or English), with the project's prompts; the sources are
marked as data, so an instruction inside one is text to answer from, not to follow.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypedDict

from langchain_core.documents import Document
from langchain_core.language_models import BaseChatModel
from langchain_core.output_parsers import StrOutputParser
from langchain_core.prompt_values import PromptValue
from langchain_core.retrievers import RetrieverLike
from langchain_core.runnables import (
    Runnable,
    RunnableBranch,
    RunnableLambda,
    RunnablePassthrough,
)

from borealis_local.errors import InvalidRequestError
from borealis_local.prompts import get_prompts, parse_citations, resolve_language
from langchain_borealis.prompts import format_documents, rag_prompt


class Citation(TypedDict):
    """A source the answer cites: its number in the prompt and the document."""

    number: int
    document: Document


class RagResult(TypedDict):
    """What the chain returns for one question."""

    question: str
    language: str  # nb, nn or en: the language of the prompt and the answer
    sources: list[Document]  # as numbered in the prompt: sources[0] is [1]
    answer: str
    citations: list[Citation]  # in the order the answer first cites them


def create_rag_chain(
    retriever: RetrieverLike,
    llm: BaseChatModel,
    language: str = "auto",
    *,
    system: str | None = None,
) -> Runnable[str | Mapping[str, str], RagResult]:
    """A chain that answers a question from the retriever's documents and cites them.

    Args:
        retriever: any retriever (or runnable) from a query to Documents, e.g.
            `KeywordRetriever` or `InMemoryVectorStore(...).as_retriever()`.
        llm: a chat model, e.g. `ChatBorealis`.
        language: `"auto"` answers in the question's language (nb, nn or en, told
            apart by function words); `"nb"`, `"nn"` or `"en"` fixes it.
        system: an optional system message (Borealis needs none).

    Input: the question as a string, or `{"question": …}`.

    `invoke` returns a dict (`RagResult`): `question`, `language`, `sources` (the
    Documents in prompt order: `sources[0]` is [1]), `answer` (text) and `citations`
    (`[{"number": 2, "document": …}, …]`, the sources the answer cites).

    `stream` yields dicts with one or more of those keys as they become known:
    `question`, then `sources` and `language`, then the `answer` text piece by piece
    (several chunks, each `{"answer": "…"}`), and last `citations`. Adding the chunks
    (`+`) gives the same dict as `invoke`.

    When the retriever finds nothing, the answer is the prompts' one-sentence "the
    sources do not answer this" in the question's language, without calling the model.
    """
    resolve_language(language, "")  # an unknown language fails here, not at the first question
    answer = RunnableBranch(
        (lambda state: not state["sources"], RunnableLambda(_no_answer)),
        RunnableLambda(lambda state: _prompt(state, system)) | llm | StrOutputParser(),
    )
    return (
        RunnableLambda(_question).with_config(run_name="question")
        | RunnablePassthrough.assign(
            sources=RunnableLambda(lambda state: state["question"]) | retriever,
            language=RunnableLambda(lambda state: resolve_language(language, state["question"])),
        )
        | RunnablePassthrough.assign(answer=answer)
        | RunnablePassthrough.assign(citations=RunnableLambda(_citations))
    ).with_config(run_name="borealis_rag")


def _question(given: str | Mapping[str, Any]) -> dict[str, str]:
    question = given.get("question") if isinstance(given, Mapping) else given
    if not isinstance(question, str) or not question.strip():
        raise InvalidRequestError(
            'the RAG chain needs a question: invoke it with a string or {"question": "…"}'
        )
    return {"question": question.strip()}


def _prompt(state: Mapping[str, Any], system: str | None) -> PromptValue:
    return rag_prompt(state["language"], system=system).format_prompt(
        sources=format_documents(state["sources"]), question=state["question"]
    )


def _no_answer(state: Mapping[str, Any]) -> str:
    return get_prompts(state["language"]).no_answer


def _citations(state: Mapping[str, Any]) -> list[Citation]:
    sources = state["sources"]
    return [
        Citation(number=n, document=sources[n - 1])
        for n in parse_citations(state["answer"], len(sources))
    ]
