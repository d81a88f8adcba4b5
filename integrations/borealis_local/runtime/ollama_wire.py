"""The private parts of ollama-python that the Ollama backend needs, in one place.

Ollama reads `truncate` and `shift` from /api/chat and /api/generate bodies (api/types.go,
since late 2025): they make it refuse an over-long prompt instead of cutting it, and stop
an answer at the window's end instead of shifting it (the backend says when it sends
`shift`: on Ollama 0.30+ it is a load-time setting that can cost a reload). The
client (0.6) has no parameter for either, and no public call sends a body of one's own.
So the body is built with the client's own request models (`ollama._types.ChatRequest`
and `GenerateRequest`, which check the fields as the public calls do), the two fields
are added, and it is sent through `Client._request`, which streams the NDJSON answer and
parses it into the client's public response types. Pinned in pyproject.toml
(`ollama>=0.6,<0.7`): check these three names before allowing a newer client.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Any, NamedTuple


class Call(NamedTuple):
    """One streamed request: where it goes, what it sends, what the answer parts are."""

    path: str
    response_type: type
    body: dict[str, Any]


def chat_call(messages: list[dict[str, str]], **fields: Any) -> Call:
    import ollama
    from ollama._types import ChatRequest

    body = ChatRequest(messages=messages, **fields).model_dump(exclude_none=True)
    return Call("/api/chat", ollama.ChatResponse, body)


def generate_call(prompt: str, **fields: Any) -> Call:
    import ollama
    from ollama._types import GenerateRequest

    body = GenerateRequest(prompt=prompt, **fields).model_dump(exclude_none=True)
    return Call("/api/generate", ollama.GenerateResponse, body)


def stream(client, call: Call) -> Iterator[Any]:
    """The answer's parts from a `Client` (close the iterator when done)."""
    return client._request(call.response_type, "POST", call.path, json=call.body, stream=True)


async def astream(client, call: Call) -> AsyncIterator[Any]:
    """The answer's parts from an `AsyncClient` (aclose it when done)."""
    return await client._request(
        call.response_type, "POST", call.path, json=call.body, stream=True
    )
