"""What `borealis bench serve` asks: synthetic prompts of set lengths, or RAG-shaped
chats (retrieved sources from the example corpus, a question last).

Synthetic prompts are raw completions, as vLLM's random dataset sends them: about
`input_len` tokens of common words (each about one token for the Gemma 3 tokenizer),
every prompt different from its first word on, so no request reuses another's prefix.
`range_ratio` is vLLM's: each length is drawn uniformly from [N·(1 − r), N·(1 + r)].

RAG chats are built by the integrations' prompt builder (`prompts.build_rag_messages`):
`sources` documents of the corpus, then the question. With `same_sources` every request
carries the same documents and only the question changes (a run of questions on one
retrieval: the runtime can reuse the cached prefix); otherwise the documents rotate.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from borealis_local.errors import InvalidRequestError

# Words for prompts of a given length: common words, each about one token.
FILLER = (
    "og i det som er på en til av for at med ikke har de var jeg om men et også fra "
    "kan vil når år nå så eller bare etter over hva ved seg under mot dag tid land by "
    "vann skog fjell hus bok lys natt sol vind hav vei barn folk arbeid skole språk"
).split()

WORKLOADS = ("synthetic", "rag")


@dataclass(frozen=True)
class ServeRequest:
    """One request: a raw prompt or chat messages, and the answer length asked for."""

    max_tokens: int
    # The prompt's length as the workload meant it, in tokens (about, for filler words);
    # the runtime's usage, where it reports one, replaces it in the results.
    input_len: int
    prompt: str | None = None
    messages: list[dict[str, str]] | None = None


def lengths(n: int, length: int, range_ratio: float, rng: random.Random) -> list[int]:
    """`n` lengths around `length`, uniform in [length·(1 − r), length·(1 + r)], each
    at least 1 (vLLM's random dataset)."""
    low = max(1, round(length * (1 - range_ratio)))
    high = max(low, round(length * (1 + range_ratio)))
    return [rng.randint(low, high) for _ in range(n)]


def synthetic(
    n: int,
    input_len: int,
    output_len: int,
    *,
    range_ratio: float = 0.0,
    seed: int = 0,
    start: int = 0,
) -> list[ServeRequest]:
    """`n` raw prompts of about `input_len` tokens, each asking for `output_len`,
    numbered from `start` (other numbers, other prompts)."""
    _check_lengths(input_len, output_len, range_ratio)
    rng = random.Random(f"{seed}/{start}")
    inputs = lengths(n, input_len, range_ratio, rng)
    outputs = lengths(n, output_len, range_ratio, rng)
    requests = []
    for index, (n_in, n_out) in enumerate(zip(inputs, outputs, strict=True)):
        # A number first: no two prompts share a first token, so none is a cache hit.
        words = [str(start + index + 1)] + [rng.choice(FILLER) for _ in range(n_in - 1)]
        requests.append(ServeRequest(max_tokens=n_out, input_len=n_in, prompt=" ".join(words)))
    return requests


def rag(
    n: int,
    sources: int,
    output_len: int,
    *,
    same_sources: bool = False,
    language: str = "nb",
    start: int = 0,
) -> list[ServeRequest]:
    """`n` RAG chats of `sources` corpus documents each and a question last, numbered
    from `start`."""
    from borealis_local.corpus import load_corpus
    from borealis_local.prompts import build_rag_messages

    corpus = load_corpus()
    if not 1 <= sources <= len(corpus):
        raise InvalidRequestError(
            f"--sources {sources}: the example corpus has {len(corpus)} documents, "
            f"give 1 to {len(corpus)}"
        )
    _check_lengths(1, output_len, 0.0)
    requests = []
    for index in range(start, start + n):
        first = 0 if same_sources else index * sources
        chosen = [corpus[(first + j) % len(corpus)] for j in range(sources)]
        # The question changes every time, so no two requests are the same prompt.
        topic = corpus[index % len(corpus)].title
        question = f"({index + 1}) Hva forteller kildene om {topic}?"
        messages, _ = build_rag_messages(question, [d.text for d in chosen], language=language)
        words = sum(len(m["content"].split()) for m in messages)
        requests.append(ServeRequest(max_tokens=output_len, input_len=words, messages=messages))
    return requests


def _check_lengths(input_len: int, output_len: int, range_ratio: float) -> None:
    if input_len < 1 or output_len < 1:
        raise InvalidRequestError("--input-len and --output-len must be 1 or more")
    if not 0 <= range_ratio < 1:
        raise InvalidRequestError(
            f"--range-ratio {range_ratio}: give a number in [0, 1) (0: every length as given)"
        )


__all__ = ["FILLER", "WORKLOADS", "ServeRequest", "lengths", "rag", "synthetic"]
