"""LlamaIndex retrievers over borealis-local's keyword and hybrid search.

They only translate: nodes to the project's documents (keyed by position), LlamaIndex's
embedding model to the runtime's Embedder form, hits back to `NodeWithScore`.
"""

from __future__ import annotations

from collections.abc import Sequence

from llama_index.core.base.embeddings.base import BaseEmbedding
from llama_index.core.retrievers import BaseRetriever
from llama_index.core.schema import BaseNode, MetadataMode, NodeWithScore, QueryBundle

from borealis_local import corpus
from borealis_local.prompts import detect_language
from borealis_local.retrieval import KeywordRetriever, Retriever
from borealis_local.retrieval.embedding import EmbeddingRetriever
from borealis_local.retrieval.fusion import RRF_K, HybridRetriever
from borealis_local.runtime.embeddings import Embedder


class _NodeRetriever(BaseRetriever):
    """What both share: nodes in, the project's retriever over them, NodeWithScore out."""

    def __init__(self, nodes: Sequence[BaseNode], similarity_top_k: int, **kwargs):
        self.nodes = list(nodes)
        self.similarity_top_k = similarity_top_k
        self._documents = [_searchable(node, i) for i, node in enumerate(self.nodes)]
        super().__init__(**kwargs)

    _index: Retriever

    def _retrieve(self, query_bundle: QueryBundle) -> list[NodeWithScore]:
        hits = self._index.search(query_bundle.query_str, k=self.similarity_top_k)
        return [
            NodeWithScore(node=self.nodes[int(hit.document.id)], score=hit.score)
            for hit in hits
            if hit.score > 0  # BM25's 0 matched nothing
        ]


class BorealisKeywordRetriever(_NodeRetriever):
    """BM25 over nodes with the Norwegian analyzer; no model.

    ```python
    from llama_index.retrievers.borealis import BorealisKeywordRetriever

    retriever = BorealisKeywordRetriever(nodes, similarity_top_k=3)
    retriever.retrieve("Kor djup er Sognefjorden?")
    ```
    A node's metadata may carry `title` (searched too) and `language` (nb, nn, en).
    """

    def __init__(self, nodes: Sequence[BaseNode], similarity_top_k: int = 4, **kwargs):
        super().__init__(nodes, similarity_top_k, **kwargs)
        self._index = KeywordRetriever(self._documents)


class BorealisHybridRetriever(_NodeRetriever):
    """BM25 and embedding search over nodes, fused by reciprocal rank: each node scores
    Σ weight / (rrf_k + rank) over the two rankings (rrf_k = 60, weights 1 and 1).

    ```python
    from llama_index.embeddings.borealis import BorealisEmbedding
    from llama_index.retrievers.borealis import BorealisHybridRetriever

    retriever = BorealisHybridRetriever(
        nodes, embed_model=BorealisEmbedding(model_name="bge-m3"), similarity_top_k=3
    )
    ```
    The nodes are embedded once, when the retriever is made.
    """

    def __init__(
        self,
        nodes: Sequence[BaseNode],
        embed_model: BaseEmbedding,
        similarity_top_k: int = 4,
        *,
        weights: tuple[float, float] = (1.0, 1.0),
        rrf_k: float = RRF_K,
        **kwargs,
    ):
        super().__init__(nodes, similarity_top_k, **kwargs)
        self._index = HybridRetriever(
            KeywordRetriever(self._documents),
            EmbeddingRetriever(self._documents, _AsEmbedder(embed_model)),
            weights=weights,
            rrf_k=rrf_k,
        )


class _AsEmbedder(Embedder):
    """A LlamaIndex embedding model in the runtime's Embedder form (texts and queries
    through their own calls, as LlamaIndex separates them)."""

    kind = "llama-index"

    def __init__(self, embed_model: BaseEmbedding):
        super().__init__(embed_model.model_name)
        self.embed_model = embed_model

    def _embed(self, texts: list[str]) -> list[list[float]]:
        return self.embed_model.get_text_embedding_batch(texts)

    def _embed_query(self, text: str) -> list[float]:
        return self.embed_model.get_query_embedding(text)


def _searchable(node: BaseNode, index: int) -> corpus.Document:
    text = node.get_content(metadata_mode=MetadataMode.NONE)
    return corpus.Document(
        id=str(index),
        title=str(node.metadata.get("title") or ""),
        language=node.metadata.get("language") or detect_language(text),
        text=text,
    )
