"""The embedding half on Qdrant, for collections one machine cannot hold.

Why Qdrant: `qdrant-client` (PyPI) runs the engine in-process (`QdrantClient(":memory:")`
or `QdrantClient(path="./index")`: exact search in numpy, fine to some 20,000 documents)
and talks to a Qdrant server or cluster (`QdrantClient(url="http://qdrant:6333")`:
HNSW, sharding, replication) through the same client API, so code written and tested on
a laptop runs unchanged against a cluster. LangChain (`langchain-qdrant`) and LlamaIndex
have stores for it too, and a collection written here reads back through LangChain's
`QdrantVectorStore(..., content_payload_key="text")`. pgvector, the other obvious
choice, is not in the Debian archive these machines reach.

    retriever = QdrantEmbeddingRetriever.from_documents(
        load_corpus(), open_embedder("bge-m3"), client=open_client("http://qdrant:6333"))
    retriever.search("Kor djup er Sognefjorden?", k=3)

Each document is one point: its vector (cosine distance; our vectors are L2-normalised,
so the score is the cosine similarity, as in `EmbeddingRetriever`) and a payload with
its id, title, language and text. Qdrant's point ids are numbers or UUIDs, so a point's
id is a UUID derived from the document id: adding a document again replaces it. The
collection remembers the embedder's name and is searched only with that embedder.

Needs `qdrant-client`: pip install 'borealis-local[scale]'.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable

from borealis_local.corpus import Document
from borealis_local.errors import InvalidRequestError, ServerUnavailableError
from borealis_local.retrieval.base import (
    ScoredDocument,
    as_documents,
    checked_k,
    checked_query,
    searchable_text,
)
from borealis_local.runtime.embeddings import Embedder

DEFAULT_COLLECTION = "borealis_documents"
# Point ids: the same document id gives the same UUID in every process and engine.
POINT_NAMESPACE = uuid.uuid5(uuid.NAMESPACE_URL, "https://github.com/borealis-local/points")
PAYLOAD_FIELDS = ("id", "title", "language", "text")
COLLECTION_KIND = "borealis-local documents"  # in the collection's metadata


def _qdrant():
    try:
        import qdrant_client
        from qdrant_client import models
    except ImportError:
        raise InvalidRequestError(
            "The Qdrant retriever needs qdrant-client: pip install 'borealis-local[scale]'"
        ) from None
    return qdrant_client, models


def open_client(location: str, *, timeout: int = 10):
    """A Qdrant client for `location`: ":memory:", a directory (the local engine, kept
    on disk), or a server's URL (`http://host:6333`; `timeout` seconds per request)."""
    qdrant_client = _qdrant()[0]
    if location == ":memory:":
        return qdrant_client.QdrantClient(":memory:")
    if location.startswith(("http://", "https://")):
        return qdrant_client.QdrantClient(url=location, timeout=timeout)
    return qdrant_client.QdrantClient(path=location)


def point_id(document_id: str) -> str:
    """The Qdrant point id of a document: a UUID derived from its id."""
    return str(uuid.uuid5(POINT_NAMESPACE, document_id))


class QdrantEmbeddingRetriever:
    """Nearest-neighbour search over documents embedded by `embedder`, in the Qdrant
    collection `collection` of `client` (local or a server: the same API).
    `batch_size` texts are embedded and upserted at a time; `progress(done, total)` is
    called after each batch."""

    def __init__(
        self,
        client,
        collection: str,
        embedder: Embedder,
        *,
        batch_size: int = 32,
        progress: Callable[[int, int], None] | None = None,
    ):
        if not isinstance(collection, str) or not collection.strip():
            raise InvalidRequestError(f"collection must name a collection, not {collection!r}")
        self.client, self.collection, self.embedder = client, collection, embedder
        self.batch_size, self.progress = batch_size, progress
        self._size: int | None = None  # the collection's vector size, once checked

    @classmethod
    def from_documents(
        cls,
        documents: Iterable[Document | str],
        embedder: Embedder,
        *,
        client=None,
        collection: str = DEFAULT_COLLECTION,
        replace: bool = False,
        **kwargs,
    ) -> QdrantEmbeddingRetriever:
        """A retriever with `documents` in `collection` (created if missing), on `client`
        or, without one, on an in-memory Qdrant of its own; `replace=True` first deletes
        the collection, so it holds these documents only."""
        if client is None:
            client = open_client(":memory:")
        retriever = cls(client, collection, embedder, **kwargs)
        retriever.add_documents(documents, replace=replace)
        return retriever

    def add_documents(self, documents: Iterable[Document | str], *, replace: bool = False) -> None:
        """Embed and store the documents; a document whose id is already there is
        replaced. Creates the collection (sized to the embedder's vectors) on first use;
        `replace=True` deletes it first (once the first batch has embedded), with every
        document it held: then another embedder may fill it."""
        models = _qdrant()[1]
        documents = as_documents(documents, what="QdrantEmbeddingRetriever")
        for start in range(0, len(documents), self.batch_size):
            batch = documents[start : start + self.batch_size]
            vectors = self.embedder.embed([searchable_text(doc) for doc in batch])
            if start == 0:
                self._prepare(len(vectors[0]), replace=replace)
            points = [
                models.PointStruct(
                    id=point_id(doc.id),
                    vector=vector,
                    payload={field: getattr(doc, field) for field in PAYLOAD_FIELDS},
                )
                for doc, vector in zip(batch, vectors, strict=True)
            ]
            self._call(self.client.upsert, collection_name=self.collection, points=points)
            if self.progress is not None:
                self.progress(min(start + self.batch_size, len(documents)), len(documents))

    def search(self, query: str, k: int = 4) -> list[ScoredDocument]:
        """The k documents nearest the query, nearest first (score: cosine similarity);
        fewer when the collection holds fewer."""
        query, k = checked_query(query), checked_k(k)
        vector = self.embedder.embed_query(query)
        self._check(len(vector))
        found = self._call(
            self.client.query_points,
            collection_name=self.collection,
            query=vector,
            limit=k,
            with_payload=list(PAYLOAD_FIELDS),
        )
        return [
            ScoredDocument(Document(**{f: point.payload[f] for f in PAYLOAD_FIELDS}), point.score)
            for point in found.points
        ]

    def __len__(self) -> int:
        """How many documents the collection holds."""
        self._check(None)
        return self._call(self.client.count, collection_name=self.collection).count

    # --- the collection ---------------------------------------------------------------

    def _prepare(self, dimensions: int, *, replace: bool) -> None:
        """Create the collection if missing (or, with `replace`, anew); otherwise check
        that it fits this embedder."""
        models = _qdrant()[1]
        exists = self._call(self.client.collection_exists, self.collection)
        if exists and replace:
            config = self._call(self.client.get_collection, self.collection).config
            if (config.metadata or {}).get("kind") != COLLECTION_KIND:
                raise InvalidRequestError(
                    f"The collection {self.collection!r} was not made by borealis-local: it is "
                    "not deleted to replace its documents; name another collection"
                )
            self._call(self.client.delete_collection, self.collection)
            self._size, exists = None, False
        if not exists:
            self._call(
                self.client.create_collection,
                collection_name=self.collection,
                vectors_config=models.VectorParams(
                    size=dimensions, distance=models.Distance.COSINE
                ),
                metadata={"kind": COLLECTION_KIND, "embedder": self.embedder.model},
            )
        self._check(dimensions)

    def _check(self, dimensions: int | None) -> None:
        """The collection exists, was embedded by this embedder, and has vectors of
        `dimensions` (when given). Asks the server once, then remembers."""
        if self._size is None:
            if not self._call(self.client.collection_exists, self.collection):
                raise InvalidRequestError(
                    f"Qdrant has no collection {self.collection!r}: add documents first with "
                    "QdrantEmbeddingRetriever.from_documents(documents, embedder, client=...) "
                    "or .add_documents(documents)"
                )
            config = self._call(self.client.get_collection, self.collection).config
            model = (config.metadata or {}).get("embedder")
            if model != self.embedder.model:
                raise InvalidRequestError(
                    f"The collection {self.collection!r} was embedded with {model!r}, not "
                    f"{self.embedder.model!r}: search it with that embedder, or use another "
                    "collection"
                )
            self._size = config.params.vectors.size
        if dimensions is not None and dimensions != self._size:
            raise InvalidRequestError(
                f"The collection {self.collection!r} holds vectors of {self._size} dimensions, "
                f"the embedder {self.embedder.model!r} gives {dimensions}"
            )

    def _call(self, method, *args, **kwargs):
        """A client call; a server that cannot be reached is ServerUnavailableError."""
        from qdrant_client.http.exceptions import ResponseHandlingException

        try:
            return method(*args, **kwargs)
        except ResponseHandlingException as error:
            where = self.client.init_options
            address = where.get("url") or where.get("host") or where.get("location")
            raise ServerUnavailableError(
                f"Qdrant is not reachable at {address} ({error}): start it (`docker run -p "
                "6333:6333 qdrant/qdrant`) or use a local client, QdrantClient(path=...)"
            ) from None

    def close(self) -> None:
        """Close the client (the retriever's own, or the one it was given)."""
        self.client.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
