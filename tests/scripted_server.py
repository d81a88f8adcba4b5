"""A TEST DOUBLE, not a real model server: an OpenAI-compatible streaming server on
loopback whose timing is scripted, so that latency metrics can be checked against
known intervals (standard library only: asyncio streams).

It speaks what `openai` streams need of `POST /v1/completions` and
`POST /v1/chat/completions` with `"stream": true` (OpenAI's streaming format:
server-sent events, one `data: {json}` per chunk, `data: [DONE]` last): each answer's
first token is sent `ttft` seconds after the request arrived, then one token every
`interval` seconds, `tokens` of them (at most the request's max_tokens); the finish
reason comes in a chunk of its own, and with `stream_options.include_usage` a last
chunk with no choices carries the usage, as OpenAI's API sends them. Times are kept
against the request's arrival (no drift), and Nagle is off, so each chunk leaves at once.

`die_after=N`: after N requests, the next one makes the server die as a killed process
would: every open connection is cut (answers break mid-stream) and it stops listening
(later requests are refused).
"""

from __future__ import annotations

import asyncio
import json
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class Script:
    """How one answer is streamed."""

    ttft: float = 0.2  # seconds from the request's arrival to the first token
    interval: float = 0.05  # seconds between tokens
    tokens: int = 10
    usage: bool = True  # send usage when the client asks for it


class ScriptedServer:
    """`with ScriptedServer(script) as server:` then `server.base_url` (ending in /v1).
    `script` is a Script, or a function of the request's number (0, 1, …) to one."""

    def __init__(
        self, script: Script | Callable[[int], Script] = Script(), *, die_after: int | None = None
    ):
        self.script = script if callable(script) else (lambda index: script)
        self.die_after = die_after
        self.received: list[dict] = []  # request bodies, in arrival order
        self.arrivals: list[float] = []  # when each arrived (time.monotonic)
        self._open: set[asyncio.StreamWriter] = set()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._server: asyncio.Server | None = None

    def __enter__(self) -> ScriptedServer:
        self._thread.start()
        self._server = self._call(asyncio.start_server(self._handle, "127.0.0.1", 0))
        port = self._server.sockets[0].getsockname()[1]
        self.base_url = f"http://127.0.0.1:{port}/v1"
        return self

    def __exit__(self, *exc) -> None:
        self._call(self._shutdown())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)
        self._loop.close()

    def _call(self, coroutine):
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop).result(timeout=10)

    async def _shutdown(self) -> None:
        await self._die()
        others = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
        for task in others:
            task.cancel()
        await asyncio.gather(*others, return_exceptions=True)

    async def _die(self) -> None:
        if self._server is not None:
            self._server.close()
        for writer in list(self._open):
            writer.transport.abort()

    # -- HTTP ------------------------------------------------------------------------

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter):
        arrived = time.monotonic()
        writer.get_extra_info("socket").setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._open.add(writer)
        try:
            head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1")
            method, path, _ = head.split("\r\n", 1)[0].split(" ", 2)
            headers = dict(
                line.lower().split(": ", 1) for line in head.split("\r\n")[1:] if ": " in line
            )
            body = await reader.readexactly(int(headers.get("content-length", 0)))
            if method == "GET" and path.endswith("/models"):
                await self._json(
                    writer,
                    {
                        "object": "list",
                        "data": [{"id": "scripted", "object": "model", "owned_by": "test-double"}],
                    },
                )
            elif method == "POST" and path.endswith(("/completions", "/chat/completions")):
                request = json.loads(body)
                index = len(self.received)
                self.received.append(request)
                self.arrivals.append(arrived)
                if self.die_after is not None and index >= self.die_after:
                    await self._die()
                    return
                await self._stream(
                    writer,
                    request,
                    self.script(index),
                    arrived,
                    chat=path.endswith("/chat/completions"),
                )
            else:
                await self._json(writer, {"error": {"message": f"no {method} {path}"}}, 404)
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            self._open.discard(writer)
            writer.close()

    async def _json(self, writer, payload: dict, status: int = 200) -> None:
        data = json.dumps(payload).encode()
        writer.write(
            f"HTTP/1.1 {status} OK\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(data)}\r\nConnection: close\r\n\r\n".encode()
            + data
        )
        await writer.drain()

    async def _stream(
        self, writer, request: dict, script: Script, arrived: float, *, chat: bool
    ) -> None:
        writer.write(
            b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n"
            b"Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
        )
        limit = request.get("max_tokens") or request.get("max_completion_tokens")
        n = min(script.tokens, limit) if limit else script.tokens
        kind = "chat.completion.chunk" if chat else "text_completion"

        async def event(payload) -> None:
            data = f"data: {payload if isinstance(payload, str) else json.dumps(payload)}\n\n"
            encoded = data.encode()
            writer.write(f"{len(encoded):x}\r\n".encode() + encoded + b"\r\n")
            await writer.drain()

        def chunk(text: str | None, finish: str | None) -> dict:
            if chat:
                delta = {} if text is None else {"role": "assistant", "content": text}
                choice = {"index": 0, "delta": delta, "finish_reason": finish}
            else:
                choice = {"index": 0, "text": text or "", "finish_reason": finish}
            return {
                "id": "scripted",
                "object": kind,
                "created": 0,
                "model": "scripted",
                "choices": [choice],
            }

        for k in range(n):
            await asyncio.sleep(
                max(0.0, arrived + script.ttft + k * script.interval - time.monotonic())
            )
            await event(chunk(f" tok{k}", None))
        await event(chunk(None, "length" if limit and n >= limit else "stop"))
        if script.usage and (request.get("stream_options") or {}).get("include_usage"):
            prompt = _prompt_words(request)
            await event(
                {
                    "id": "scripted",
                    "object": kind,
                    "created": 0,
                    "model": "scripted",
                    "choices": [],
                    "usage": {
                        "prompt_tokens": prompt,
                        "completion_tokens": n,
                        "total_tokens": prompt + n,
                    },
                }
            )
        await event("[DONE]")
        writer.write(b"0\r\n\r\n")
        await writer.drain()


def _prompt_words(request: dict) -> int:
    if "messages" in request:
        return sum(len(str(m.get("content", "")).split()) for m in request["messages"])
    return len(str(request.get("prompt", "")).split())
