"""`borealis eval retrieval`: recall@1/5/10, MRR@10 and nDCG@10 of the keyword, embedding
and hybrid retrievers side by side, on the shipped Norwegian set or your own."""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable

DESCRIPTION = """\
Score retrievers on a question set: documents (JSONL: id, text, optional title and
language) and questions (JSONL: question, relevant ids), by default the Norwegian set
shipped with borealis-local. The keyword retriever always runs; --embed MODEL adds the
embedding and the hybrid (RRF) retrievers; --postgres DSN adds PostgreSQL full-text
search, --qdrant LOCATION (with --embed) the embedding half on Qdrant.

  borealis eval retrieval
  borealis eval retrieval --embed ~/models/embedder.gguf --by language
  borealis eval retrieval --documents docs.jsonl --questions questions.jsonl --json
"""


def register(subparsers) -> None:
    """Add `eval` and its subcommand `retrieval` to a `borealis` argparse tree."""
    parser = subparsers.add_parser(
        "eval",
        help="measure retrieval on a question set",
        description="Measure parts of a RAG pipeline.",
    )
    commands = parser.add_subparsers(dest="eval_command", required=True, metavar="SUBCOMMAND")
    p = commands.add_parser(
        "retrieval", help="recall, MRR and nDCG of keyword, embedding and hybrid search",
        description=DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter,
    )  # fmt: skip
    p.add_argument(
        "--documents",
        type=str,
        metavar="FILE.jsonl",
        help="documents (default: the shipped Norwegian set)",
    )
    p.add_argument(
        "--questions",
        type=str,
        metavar="FILE.jsonl",
        help="questions with relevant ids (default: the shipped set's)",
    )
    p.add_argument(
        "--embed",
        metavar="MODEL",
        help="an embedding model: a .gguf path, an Ollama tag or "
        "openai:MODEL@URL; adds the embedding and hybrid retrievers",
    )
    p.add_argument(
        "--weights", default="1,1", metavar="KEYWORD,EMBEDDING", help="hybrid RRF weights (1,1)"
    )
    p.add_argument("--rrf-k", type=float, default=60, metavar="K", help="RRF's k (60)")
    p.add_argument(
        "--postgres",
        metavar="DSN",
        help="also PostgreSQL full-text search (norwegian), e.g. "
        "postgresql://user@127.0.0.1:5432/db",
    )
    p.add_argument(
        "--qdrant",
        metavar="LOCATION",
        help="also the embedding half on Qdrant: :memory:, a directory, or "
        "http://host:6333 (needs --embed)",
    )
    p.add_argument(
        "--by", choices=("language", "kind"),
        help="a row per question language (nb, nn, en) or kind (paraphrase, crossing, ...) too",
    )  # fmt: skip
    p.add_argument("--json", action="store_true", help="the scores as JSON")
    p.set_defaults(func=cmd_eval_retrieval)


def cmd_eval_retrieval(args: argparse.Namespace) -> int:
    from borealis_local.errors import InvalidRequestError
    from borealis_local.retrieval import evaluation

    if args.qdrant and not args.embed:
        raise InvalidRequestError("--qdrant needs --embed MODEL: the model that embeds")
    args.weights = _weights(args.weights)  # checked before anything is opened
    documents, questions = evaluation.load_set(args.documents, args.questions)
    retrievers, closing = _retrievers(args, documents)
    try:
        ranked = _rank(retrievers, questions)
    finally:
        for close in closing:
            close()
    groups = {"all": list(range(len(questions)))}
    if args.by:
        for value in sorted({getattr(q, args.by) for q in questions}):
            groups[value] = [i for i, q in enumerate(questions) if getattr(q, args.by) == value]
    table = {
        name: {
            group: evaluation.scores([ranks[i] for i in at], [questions[i] for i in at])
            for group, at in groups.items()
        }
        for name, ranks in ranked.items()
    }
    if args.json:
        result = {
            "documents": len(documents),
            "questions": len(questions),
            "scores": {
                name: {group: s.as_dict() for group, s in by_group.items()}
                for name, by_group in table.items()
            },
        }
        print(json.dumps(result, indent=2))
    else:
        print(f"{len(documents)} documents, {len(questions)} questions\n")
        print(markdown_table(table))
    return 0


def _retrievers(args, documents) -> tuple[dict, list[Callable[[], None]]]:
    """The retrievers the options ask for, by name, and what to close after."""
    from borealis_local.retrieval.keyword import KeywordRetriever

    retrievers: dict = {"keyword": KeywordRetriever.from_documents(documents)}
    closing: list[Callable[[], None]] = []
    if args.embed:
        from borealis_local.retrieval.embedding import EmbeddingRetriever
        from borealis_local.retrieval.fusion import HybridRetriever
        from borealis_local.runtime.registry import open_embedder

        embedder = open_embedder(args.embed)
        closing.append(embedder.close)
        with _progress(f"embedding {len(documents)} documents", len(documents)) as step:
            embedding = EmbeddingRetriever.from_documents(
                documents, embedder, progress=lambda done, total: step(done)
            )
        retrievers["embedding"] = embedding
        retrievers["hybrid"] = HybridRetriever(
            retrievers["keyword"], embedding, weights=args.weights, rrf_k=args.rrf_k
        )
    if args.postgres:
        from borealis_local.retrieval.postgres import PostgresKeywordRetriever

        # replace: the table holds this set only (it refuses a table it did not make).
        retrievers["postgres"] = PostgresKeywordRetriever.from_documents(
            documents, args.postgres, replace=True
        )
        closing.append(retrievers["postgres"].close)
    if args.qdrant:
        from borealis_local.retrieval.qdrant import QdrantEmbeddingRetriever, open_client

        retrievers["qdrant"] = QdrantEmbeddingRetriever.from_documents(
            documents, embedder, client=open_client(args.qdrant), replace=True
        )
    return retrievers, closing


def _weights(text: str) -> tuple[float, float]:
    from borealis_local.errors import InvalidRequestError

    try:
        keyword, embedding = (float(x) for x in text.split(","))
    except ValueError:
        raise InvalidRequestError(
            f"--weights {text!r}: give two numbers, KEYWORD,EMBEDDING (e.g. 1,1)"
        ) from None
    return keyword, embedding


def _rank(retrievers: dict, questions) -> dict[str, list[list[str]]]:
    from borealis_local.retrieval.evaluation import rankings

    ranked = {}
    for name, retriever in retrievers.items():
        with _progress(f"{name}: {len(questions)} questions", len(questions)) as step:
            ranked[name] = rankings(retriever, questions, progress=step)
    return ranked


class _progress:
    """A rich progress bar on stderr (quiet where stderr is no terminal); call the
    context's value with how many are done."""

    def __init__(self, description: str, total: int):
        from rich.console import Console
        from rich.progress import Progress

        self._bar = Progress(console=Console(stderr=True), transient=True)
        self._task = self._bar.add_task(description, total=total)

    def __enter__(self) -> Callable[[int], None]:
        self._bar.start()
        return lambda done: self._bar.update(self._task, completed=done)

    def __exit__(self, *exc) -> None:
        self._bar.stop()


COLUMNS = (
    ("recall@1", "recall_at_1"),
    ("recall@5", "recall_at_5"),
    ("recall@10", "recall_at_10"),
    ("MRR@10", "mrr_at_10"),
    ("nDCG@10", "ndcg_at_10"),
)


def markdown_table(table: dict) -> str:
    """One row per retriever (and question group): recall as percentages, MRR and nDCG
    as fractions."""
    lines = [
        "| retriever | questions | " + " | ".join(c for c, _ in COLUMNS) + " |",
        "| --- | ---: |" + " ---: |" * len(COLUMNS),
    ]
    for name, by_group in table.items():
        for group, s in by_group.items():
            label = name if group == "all" else f"{name} ({group})"
            cells = [
                f"{getattr(s, key) * 100:.1f}%"
                if key.startswith("recall")
                else f"{getattr(s, key):.3f}"
                for _, key in COLUMNS
            ]
            lines.append(f"| {label} | {s.questions} | " + " | ".join(cells) + " |")
    return "\n".join(lines)
