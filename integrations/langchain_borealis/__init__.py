"""LangChain integration for the Borealis models (National Library of Norway).

    from langchain_borealis import ChatBorealis, create_rag_chain, KeywordRetriever

`ChatBorealis` runs a Borealis model on any borealis-local runtime (llama.cpp
in-process, Ollama, an OpenAI-compatible server); `create_rag_chain` answers questions
from retrieved sources with the project's Bokmål, Nynorsk and English prompts and says
which sources it cited.
"""

from langchain_borealis.chat_models import ChatBorealis
from langchain_borealis.embeddings import BorealisEmbeddings
from langchain_borealis.prompts import chat_prompt, chat_prompts, format_documents, rag_prompt
from langchain_borealis.rag import Citation, RagResult, create_rag_chain
from langchain_borealis.retrievers import (
    HybridRetriever,
    KeywordRetriever,
    example_corpus_documents,
)

__all__ = [
    "BorealisEmbeddings",
    "Citation",
    "ChatBorealis",
    "HybridRetriever",
    "KeywordRetriever",
    "RagResult",
    "chat_prompt",
    "chat_prompts",
    "create_rag_chain",
    "example_corpus_documents",
    "format_documents",
    "rag_prompt",
]
