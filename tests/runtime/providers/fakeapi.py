"""A local fake of the Anthropic Messages and Message Batches APIs and of OpenAI chat completions.

Unlike ``fakeservers.FakeServer`` (one thread per request, one connection per request), this one
speaks HTTP/1.1 with keep-alive on one asyncio loop, so it can serve hundreds of requests in
flight cheaply and count the TCP connections a client opens. It runs in a thread of the test
process (``with FakeAPI(...) as api``), or as its own process for benchmarks, so that its CPU is
not the client's::

    python tests/runtime/providers/fakeapi.py --latency 0.05     # prints "PORT <n>", then serves

What it plays, besides plain replies after ``latency`` seconds:

- rate limits: with ``allow_in_flight=K``, a request that arrives while K are being answered
  gets a 429 with ``retry-after`` and ``anthropic-ratelimit-requests-remaining: 0``; every
  reply carries ``anthropic-ratelimit-requests-limit``/``-remaining`` and ``x-ratelimit-*``
  headers when ``rate_headers`` is set;
- the Message Batches API: create, retrieve, results as JSONL, cancel. A batch ends after
  ``batch_polls`` retrieves; ``batch_outcome(custom_id, params)`` decides each request's result
  (``("succeeded", text)`` or ``("succeeded", text, stop_reason)``, ``("errored", message)``,
  ``("canceled",)``, ``("expired",)``);
  ``expire_batches=True`` ends every batch ``expired`` with its requests expired;
  ``refuse_cancels=True`` answers every cancel with a 400, as for a batch that cannot be cancelled;
  ``on_batch(step)`` is called before each ``create``, ``retrieve`` and ``results`` is answered
  (a test kills its client there), and when it returns ``"drop"`` the request is dropped
  unanswered (a create then makes no batch).
"""

from __future__ import annotations

import asyncio
import json
import sys
import threading
import time
import uuid
from collections.abc import Callable
from typing import Any

__all__ = ["FakeAPI"]

Outcome = tuple[Any, ...]


def _message(
    text: str, params: dict[str, Any], *, input_tokens: int = 11, output_tokens: int = 3, stop_reason: str = "end_turn"
) -> dict[str, Any]:
    return {
        "id": "msg_" + uuid.uuid4().hex[:12],
        "type": "message",
        "role": "assistant",
        "model": params.get("model", "claude-haiku-4-5"),
        "content": [{"type": "text", "text": text}],
        "stop_reason": stop_reason,
        "stop_sequence": None,
        "usage": {"input_tokens": input_tokens, "output_tokens": output_tokens,
                  "cache_read_input_tokens": 0, "cache_creation_input_tokens": 0},
    }


def _completion(text: str, params: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": "chatcmpl-fake", "object": "chat.completion", "created": 0,
        "model": params.get("model", "fake"),
        "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 11, "completion_tokens": 3, "total_tokens": 14},
    }


def _echo(params: dict[str, Any]) -> str:
    """The default reply: ``ok`` (a test that wants content gives ``reply=``)."""
    return "ok"


class _Batch:
    def __init__(self, batch_id: str, requests: list[dict[str, Any]]) -> None:
        self.id = batch_id
        self.requests = requests
        self.created = time.time()
        self.polls = 0
        self.status = "in_progress"
        self.cancel_asked = False
        self.results: list[dict[str, Any]] = []


class FakeAPI:
    """The fake server; see the module's docstring."""

    def __init__(
        self,
        *,
        latency: float = 0.0,
        reply: Callable[[dict[str, Any]], str] = _echo,
        allow_in_flight: int | None = None,
        retry_after: float = 0.05,
        rate_headers: bool = False,
        batch_polls: int = 2,
        batch_outcome: Callable[[str, dict[str, Any]], Outcome] | None = None,
        expire_batches: bool = False,
        refuse_cancels: bool = False,
        usage: tuple[int, int] = (11, 3),
        on_batch: Callable[[str], object] | None = None,
    ) -> None:
        self.on_batch = on_batch
        self.latency = latency
        self.reply = reply
        self.allow_in_flight = allow_in_flight
        self.retry_after = retry_after
        self.rate_headers = rate_headers
        self.batch_polls = batch_polls
        self.batch_outcome = batch_outcome
        self.expire_batches = expire_batches
        self.refuse_cancels = refuse_cancels
        self.usage = usage
        #: TCP connections accepted, requests answered, 429s sent, most requests at once.
        self.connections = 0
        self.requests = 0
        self.limited = 0
        self.peak = 0
        self.in_flight = 0
        self.batches: dict[str, _Batch] = {}
        self.cancels: list[str] = []
        self.port = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._server: asyncio.Server | None = None
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._tasks: set[asyncio.Task[None]] = set()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    # -- running -------------------------------------------------------------------------

    async def serve(self, port: int = 0) -> asyncio.Server:
        self._server = await asyncio.start_server(self._connection, "127.0.0.1", port, backlog=1024)
        self.port = self._server.sockets[0].getsockname()[1]
        return self._server

    def __enter__(self) -> FakeAPI:
        def main() -> None:
            loop = asyncio.new_event_loop()
            self._loop = loop
            loop.run_until_complete(self.serve())
            self._ready.set()
            loop.run_forever()
            assert self._server is not None
            self._server.close()
            loop.run_until_complete(self._server.wait_closed())
            loop.close()

        self._thread = threading.Thread(target=main, name="fakeapi", daemon=True)
        self._thread.start()
        self._ready.wait(10)
        return self

    def __exit__(self, *exc_info: object) -> None:
        assert self._loop is not None and self._thread is not None
        asyncio.run_coroutine_threadsafe(self._close_connections(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)

    async def _close_connections(self) -> None:
        """End the connections clients keep open, so that no handler outlives the loop."""
        tasks = [t for t in self._tasks if not t.done()]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    # -- HTTP ----------------------------------------------------------------------------

    async def _connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        task = asyncio.current_task()
        if task is not None:
            self._tasks.add(task)
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                lines = head.decode("latin-1").split("\r\n")
                method, path, _ = lines[0].split(" ", 2)
                headers = {}
                for line in lines[1:]:
                    if ":" in line:
                        name, value = line.split(":", 1)
                        headers[name.strip().lower()] = value.strip()
                length = int(headers.get("content-length") or 0)
                body = json.loads(await reader.readexactly(length)) if length else None
                step = _batch_step(method, path)
                if step is not None and self.on_batch is not None and self.on_batch(step) == "drop":
                    break
                status, payload, extra, content_type = await self._route(method, path, body)
                data = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
                out = [f"HTTP/1.1 {status} {_REASONS.get(status, 'OK')}", f"content-type: {content_type}",
                       f"content-length: {len(data)}", "request-id: req_fake"]
                out += [f"{k}: {v}" for k, v in extra.items()]
                writer.write(("\r\n".join(out) + "\r\n\r\n").encode("latin-1") + data)
                await writer.drain()
                if headers.get("connection", "").lower() == "close":
                    break
        except (asyncio.IncompleteReadError, ConnectionError, asyncio.LimitOverrunError, asyncio.CancelledError):
            pass
        finally:
            writer.close()
            if task is not None:
                self._tasks.discard(task)

    async def _route(self, method: str, path: str, body: Any) -> tuple[int, Any, dict[str, str], str]:
        path = path.split("?", 1)[0]
        if method == "GET" and path == "/stats":
            stats = {"connections": self.connections, "requests": self.requests, "limited": self.limited,
                     "peak": self.peak, "batches": len(self.batches),
                     "batch_requests": sum(len(b.requests) for b in self.batches.values())}
            return 200, stats, {}, "application/json"
        if method == "POST" and path in ("/v1/messages", "/v1/chat/completions"):
            return await self._answer(path, body or {})
        if path.startswith("/v1/messages/batches"):
            return self._batches(method, path.removeprefix("/v1/messages/batches").strip("/"), body)
        return 404, {"type": "error", "error": {"type": "not_found_error", "message": path}}, {}, "application/json"

    async def _answer(self, path: str, params: dict[str, Any]) -> tuple[int, Any, dict[str, str], str]:
        self.requests += 1
        limit = self.allow_in_flight
        if limit is not None and self.in_flight >= limit:
            self.limited += 1
            headers = {"retry-after": f"{self.retry_after:g}", **self._rate_headers(0)}
            body = {"type": "error", "error": {"type": "rate_limit_error", "message": "rate limited"}}
            return 429, body, headers, "application/json"
        self.in_flight += 1
        self.peak = max(self.peak, self.in_flight)
        try:
            if self.latency:
                await asyncio.sleep(self.latency)
            text = self.reply(params)
        finally:
            self.in_flight -= 1
        remaining = max(0, (limit or 1000) - self.in_flight)
        headers = self._rate_headers(remaining) if self.rate_headers else {}
        if path == "/v1/messages":
            return 200, _message(text, params, input_tokens=self.usage[0], output_tokens=self.usage[1]), headers, "application/json"
        return 200, _completion(text, params), headers, "application/json"

    def _rate_headers(self, remaining: int) -> dict[str, str]:
        limit = self.allow_in_flight or 1000
        return {
            "anthropic-ratelimit-requests-limit": str(limit),
            "anthropic-ratelimit-requests-remaining": str(remaining),
            "x-ratelimit-limit-requests": str(limit),
            "x-ratelimit-remaining-requests": str(remaining),
        }

    # -- Message Batches -----------------------------------------------------------------

    def _batches(self, method: str, rest: str, body: Any) -> tuple[int, Any, dict[str, str], str]:
        parts = rest.split("/") if rest else []
        if method == "POST" and not parts:
            batch = _Batch("msgbatch_" + uuid.uuid4().hex[:16], list(body["requests"]))
            self.batches[batch.id] = batch
            return 200, self._batch_json(batch), {}, "application/json"
        batch = self.batches.get(parts[0]) if parts else None
        if batch is None:
            return 404, {"type": "error", "error": {"type": "not_found_error", "message": rest}}, {}, "application/json"
        if method == "POST" and parts[1:] == ["cancel"]:
            self.cancels.append(batch.id)
            if self.refuse_cancels:
                error = {"type": "invalid_request_error", "message": "this batch cannot be canceled"}
                return 400, {"type": "error", "error": error}, {}, "application/json"
            if batch.status == "in_progress":
                batch.cancel_asked = True
                batch.status = "canceling"
            return 200, self._batch_json(batch), {}, "application/json"
        if method == "GET" and parts[1:] == ["results"]:
            lines = b"".join(json.dumps(r).encode() + b"\n" for r in batch.results)
            return 200, lines, {}, "application/binary"
        if method == "GET" and len(parts) == 1:
            batch.polls += 1
            if batch.status != "ended" and (batch.polls >= self.batch_polls or batch.cancel_asked):
                self._end(batch)
            return 200, self._batch_json(batch), {}, "application/json"
        return 404, {"type": "error", "error": {"type": "not_found_error", "message": rest}}, {}, "application/json"

    def _end(self, batch: _Batch) -> None:
        batch.status = "ended"
        results = []
        for request in batch.requests:
            custom_id, params = request["custom_id"], request["params"]
            if self.expire_batches:
                outcome: Outcome = ("expired",)
            elif batch.cancel_asked:
                outcome = ("canceled",)
            elif self.batch_outcome is not None:
                outcome = self.batch_outcome(custom_id, params)
            else:
                outcome = ("succeeded", self.reply(params))
            results.append({"custom_id": custom_id, "result": _result(outcome, params, self.usage)})
        results.reverse()  # the API promises no order
        batch.results = results

    def _batch_json(self, batch: _Batch) -> dict[str, Any]:
        counts = {"processing": 0, "succeeded": 0, "errored": 0, "canceled": 0, "expired": 0}
        if batch.status == "ended":
            for r in batch.results:
                counts[r["result"]["type"]] += 1
        else:
            counts["processing"] = len(batch.requests)
        stamp = _iso(batch.created)
        return {
            "id": batch.id,
            "type": "message_batch",
            "processing_status": batch.status,
            "request_counts": counts,
            "created_at": stamp,
            "expires_at": _iso(batch.created + 86_400),
            "ended_at": _iso(time.time()) if batch.status == "ended" else None,
            "cancel_initiated_at": stamp if batch.cancel_asked else None,
            "archived_at": None,
            "results_url": f"{self.url}/v1/messages/batches/{batch.id}/results" if batch.status == "ended" else None,
        }


def _result(outcome: Outcome, params: dict[str, Any], usage: tuple[int, int]) -> dict[str, Any]:
    kind = outcome[0]
    if kind == "succeeded":
        stop = outcome[2] if len(outcome) > 2 else "end_turn"
        return {"type": "succeeded", "message": _message(outcome[1], params, input_tokens=usage[0], output_tokens=usage[1],
                                                         stop_reason=stop)}
    if kind == "errored":
        return {"type": "errored", "error": {"type": "error", "error": {"type": "invalid_request_error", "message": outcome[1]}}}
    return {"type": kind}


def _batch_step(method: str, path: str) -> str | None:
    """``create``, ``retrieve`` or ``results`` for a Message Batches request, else None."""
    rest = path.split("?", 1)[0].removeprefix("/v1/messages/batches")
    if rest == path.split("?", 1)[0]:
        return None
    parts = [p for p in rest.split("/") if p]
    if method == "POST" and not parts:
        return "create"
    if method == "GET" and len(parts) == 1:
        return "retrieve"
    if method == "GET" and parts[1:] == ["results"]:
        return "results"
    return None


def _iso(seconds: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(seconds))


_REASONS = {200: "OK", 404: "Not Found", 429: "Too Many Requests"}


def main(argv: list[str]) -> None:
    import argparse

    parser = argparse.ArgumentParser(description="the fake API, as its own process")
    parser.add_argument("--latency", type=float, default=0.0)
    parser.add_argument("--batch-polls", type=int, default=2)
    args = parser.parse_args(argv)
    api = FakeAPI(latency=args.latency, batch_polls=args.batch_polls)

    async def run() -> None:
        server = await api.serve()
        print(f"PORT {api.port}", flush=True)
        async with server:
            await server.serve_forever()

    asyncio.run(run())


if __name__ == "__main__":
    main(sys.argv[1:])
