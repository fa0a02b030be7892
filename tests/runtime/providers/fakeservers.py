"""Local stand-ins for the Anthropic Messages API and OpenAI chat completions.

The provider tests must go through the real HTTP path (the SDK, httpx, our retry loop) without
the network. ``FakeServer`` listens on 127.0.0.1 in a thread, answers each POST with the next
queued ``Answer`` (or a default success for the path it got), and records every request with the
moment it arrived, so a test can check what was sent and how long the client waited between
attempts.

    with FakeServer() as server:
        server.queue(anthropic_error(429, "rate_limit_error", retry_after="1"), Answer())
        provider = AnthropicProvider("claude-haiku-4-5", api_key="k", base_url=server.url)
        ...
        assert server.received[1].at - server.received[0].at >= 1
"""

from __future__ import annotations

import http.server
import json
import socket
import struct
import threading
import time
from collections import deque
from collections.abc import Mapping
from typing import Any

import attrs

__all__ = [
    "Answer",
    "FakeServer",
    "Received",
    "anthropic_error",
    "anthropic_message",
    "empty_body",
    "hang",
    "html_page",
    "openai_completion",
    "openai_error",
    "reset_mid_body",
    "truncated_json",
]


@attrs.frozen
class Answer:
    """One scripted HTTP answer. ``body=None`` means the default success for the path."""

    status: int = 200
    body: Any = None
    headers: Mapping[str, str] = attrs.field(factory=dict)
    #: Seconds to wait before answering, to play a slow or hung server.
    delay: float = 0.0
    #: Bytes sent as the body instead of ``body`` as JSON (a broken or foreign body).
    raw: bytes | None = None
    content_type: str = "application/json"
    #: Send only this many bytes of the body (announcing all of them), then reset the connection.
    cut_after: int | None = None


@attrs.frozen
class Received:
    """One request the server got."""

    path: str
    headers: Mapping[str, str]  # names in lower case
    body: Any  # the parsed JSON body
    #: time.monotonic() when the request arrived.
    at: float


def anthropic_message(
    text: str = "ok",
    *,
    input_tokens: int = 11,
    output_tokens: int = 3,
    cache_read_input_tokens: int = 0,
    cache_creation_input_tokens: int = 0,
    model: str = "claude-haiku-4-5",
    stop_reason: str = "end_turn",
) -> Answer:
    """A successful Messages API reply."""
    return Answer(
        body={
            "id": "msg_fake",
            "type": "message",
            "role": "assistant",
            "model": model,
            "content": [{"type": "text", "text": text}],
            "stop_reason": stop_reason,
            "stop_sequence": None,
            "usage": {
                "input_tokens": input_tokens,
                "output_tokens": output_tokens,
                "cache_read_input_tokens": cache_read_input_tokens,
                "cache_creation_input_tokens": cache_creation_input_tokens,
            },
        }
    )


def anthropic_error(
    status: int, kind: str, message: str = "", *, retry_after: str | None = None
) -> Answer:
    """A Messages API error, e.g. ``anthropic_error(529, "overloaded_error")``."""
    headers = {"retry-after": retry_after} if retry_after is not None else {}
    body = {"type": "error", "error": {"type": kind, "message": message or kind}}
    return Answer(status=status, body=body, headers=headers)


def openai_completion(
    text: str = "ok",
    *,
    prompt_tokens: int | None = 11,
    completion_tokens: int | None = 3,
    cached_tokens: int | None = None,
    model: str = "fake-model",
    finish_reason: str = "stop",
) -> Answer:
    """A successful chat completion. ``prompt_tokens=None`` leaves out ``usage``, as some
    local servers do."""
    body: dict[str, Any] = {
        "id": "chatcmpl-fake",
        "object": "chat.completion",
        "created": 0,
        "model": model,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": text},
                "finish_reason": finish_reason,
            }
        ],
    }
    if prompt_tokens is not None:
        usage: dict[str, Any] = {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + (completion_tokens or 0),
        }
        if cached_tokens is not None:
            usage["prompt_tokens_details"] = {"cached_tokens": cached_tokens}
        body["usage"] = usage
    return Answer(body=body)


def openai_error(
    status: int, message: str, *, kind: str = "error", retry_after: str | None = None
) -> Answer:
    """An OpenAI-style error body: ``{"error": {"message", "type", "code"}}``."""
    headers = {"retry-after": retry_after} if retry_after is not None else {}
    body = {"error": {"message": message, "type": kind, "code": None}}
    return Answer(status=status, body=body, headers=headers)


def truncated_json(answer: Answer, keep: int = 40) -> Answer:
    """``answer`` with its JSON body cut after ``keep`` bytes, as a proxy that gave up would."""
    return attrs.evolve(answer, raw=json.dumps(answer.body).encode()[:keep])


def html_page(status: int = 200) -> Answer:
    """An HTML error page, as a load balancer or a captive portal answers."""
    page = b"<html><head><title>502 Bad Gateway</title></head><body>nginx</body></html>"
    return Answer(status=status, raw=page, content_type="text/html")


def empty_body(status: int = 200) -> Answer:
    """A reply with no body at all."""
    return Answer(status=status, raw=b"")


def hang() -> Answer:
    """No reply until the client gives up (or the server stops)."""
    return Answer(delay=3600)


def reset_mid_body(answer: Answer, keep: int = 30) -> Answer:
    """``answer``, but the connection is reset after ``keep`` bytes of its body."""
    return attrs.evolve(answer, cut_after=keep)


_DEFAULTS = {
    "/v1/messages": anthropic_message,
    "/v1/chat/completions": openai_completion,
}


class FakeServer:
    """An HTTP server on 127.0.0.1 that answers POSTs from a queue and records them.

    ``url`` is ``http://127.0.0.1:PORT``: pass it as the Anthropic ``base_url``, or
    ``url + "/v1"`` as the OpenAI-compatible one. Use it as a context manager; leaving it
    stops the server and ends any delayed answer at once.
    """

    def __init__(self) -> None:
        self.received: list[Received] = []
        self._answers: deque[Answer] = deque()
        self._always: Answer | None = None
        self._lock = threading.Lock()
        self._closing = threading.Event()
        self._httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), self._handler_class())
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )

    @property
    def url(self) -> str:
        host, port = self._httpd.server_address[:2]
        return f"http://{host}:{port}"

    def queue(self, *answers: Answer) -> None:
        """Answer the next requests with these, in order; after them, the default success."""
        with self._lock:
            self._answers.extend(answers)

    def always(self, answer: Answer) -> None:
        """Once the queue is empty, answer every request with ``answer`` (a storm)."""
        with self._lock:
            self._always = answer

    def __enter__(self) -> FakeServer:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._closing.set()
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join()

    def _next_answer(self, path: str) -> Answer:
        with self._lock:
            if self._answers:
                return self._answers.popleft()
            if self._always is not None:
                return self._always
        default = _DEFAULTS.get(path)
        if default is None:
            return Answer(status=404, body={"error": {"message": f"no route {path}"}})
        return default()

    def _handler_class(self) -> type[http.server.BaseHTTPRequestHandler]:
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                at = time.monotonic()
                length = int(self.headers.get("content-length") or 0)
                raw = self.rfile.read(length)
                with server._lock:
                    server.received.append(
                        Received(
                            path=self.path,
                            headers={k.lower(): v for k, v in self.headers.items()},
                            body=json.loads(raw) if raw else None,
                            at=at,
                        )
                    )
                answer = server._next_answer(self.path)
                if answer.delay and server._closing.wait(answer.delay):
                    return
                if answer.raw is not None:
                    payload = answer.raw
                else:
                    body = answer.body
                    if body is None:
                        body = _DEFAULTS[self.path]().body
                    payload = json.dumps(body).encode()
                try:
                    self.send_response(answer.status)
                    self.send_header("content-type", answer.content_type)
                    self.send_header("content-length", str(len(payload)))
                    for name, value in answer.headers.items():
                        self.send_header(name, value)
                    self.end_headers()
                    if answer.cut_after is None:
                        self.wfile.write(payload)
                        return
                    self.wfile.write(payload[: answer.cut_after])
                    # SO_LINGER with a zero timeout makes close() send RST: a reset, not an end.
                    self.connection.setsockopt(
                        socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0)
                    )
                    self.close_connection = True
                    self.connection.close()
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up (its timeout fired): nothing left to tell it

            def log_message(self, format: str, *args: object) -> None:
                pass  # keep test output clean

        return Handler
