"""Outgoing HTTP for components whose world imports ``wasi:http``.

A channel reaches its platform's API over ``wasi:http/outgoing-handler``;
this module turns the raw bindings into two calls::

    from talon_sdk import http

    answer = http.request("POST", url, body=b"{}", headers=[("content-type", "application/json")])
    answer.status, answer.json()

    pending = http.start("GET", url)        # a long poll, not waited for
    answer = pending.wait(1000)             # the answer, or None after 1 s

Everything blocks: the component's call waits on a ``wasi:io`` pollable
(which costs no fuel), so a synchronous export such as ``receive`` can wait
for its platform. The host sends the request only to hosts the operator
granted; a refused host is an :class:`HttpError` whose text says so.

Build against a world that imports ``wasi:http/outgoing-handler`` (for
example ``examples/channels/wit``); in a ``tool`` world, or in plain
CPython, importing this module works but a request raises
:class:`HttpError`.
"""

from __future__ import annotations

import json
from typing import Any, Iterable, Optional, Tuple
from urllib.parse import urlsplit

# Imported with the module, not during a call (see talon_sdk/__init__.py).
try:
    from componentize_py_types import Err as _Err
    from componentize_py_types import Ok as _Ok
    from wit_world.imports import monotonic_clock as _clock
    from wit_world.imports import outgoing_handler as _handler
    from wit_world.imports import poll as _poll
    from wit_world.imports import streams as _streams
    from wit_world.imports import types as _http
except ImportError:
    _Err = _Ok = _clock = _handler = _poll = _streams = _http = None

__all__ = ["HttpError", "Pending", "Response", "request", "start"]

# A blocking write is at most this long (`blocking-write-and-flush`'s limit).
_WRITE_CHUNK = 4096
# Bytes asked for per read of a response body.
_READ_CHUNK = 64 * 1024
# The longest response body read unless the caller says otherwise.
DEFAULT_MAX_BYTES = 4 * 1024 * 1024


class HttpError(Exception):
    """The request did not complete: refused by the host, unreachable,
    malformed, or its answer was larger than allowed."""

    def __init__(self, message: str, *, denied: bool = False) -> None:
        super().__init__(message)
        self.denied = denied
        """True when the host refused the destination (not granted)."""


class Response:
    """An answer: status, headers (lowercase names) and the whole body."""

    def __init__(self, status: int, headers: list[Tuple[str, str]], body: bytes) -> None:
        self.status = status
        self.headers = headers
        self.body = body

    def header(self, name: str) -> Optional[str]:
        """The first value of a header, by case-insensitive name."""
        name = name.lower()
        return next((v for k, v in self.headers if k == name), None)

    def json(self) -> Any:
        """The body decoded as JSON (``ValueError`` if it is not)."""
        return json.loads(self.body.decode("utf-8"))


class Pending:
    """A request sent and not yet answered (see :func:`start`)."""

    def __init__(self, future: Any, max_bytes: int) -> None:
        self._future = future
        self._max_bytes = max_bytes

    def wait(self, timeout_ms: Optional[int] = None) -> Optional[Response]:
        """Waits at most ``timeout_ms`` (forever if ``None``) for the
        answer. Returns it once it came, ``None`` if the time ran out first:
        the request stays pending and a later ``wait`` picks it up."""
        if self._future is None:
            raise HttpError("this request was already answered")
        ready = self._future.subscribe()
        try:
            if timeout_ms is None:
                ready.block()
            else:
                timer = _clock.subscribe_duration(max(0, int(timeout_ms)) * 1_000_000)
                try:
                    _poll.poll([ready, timer])
                finally:
                    timer.__exit__(None, None, None)
        finally:
            ready.__exit__(None, None, None)
        outcome = self._future.get()
        if outcome is None:
            return None
        future, self._future = self._future, None
        try:
            return _read_response(outcome, self._max_bytes)
        finally:
            future.__exit__(None, None, None)


def start(
    method: str,
    url: str,
    *,
    headers: Iterable[Tuple[str, str]] = (),
    body: bytes = b"",
    max_bytes: int = DEFAULT_MAX_BYTES,
) -> Pending:
    """Sends a request and returns without waiting for its answer."""
    if _handler is None:
        raise HttpError("no wasi:http in this world: build against one that imports it")
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise HttpError(f"not an http(s) URL: {url}")
    try:
        fields = _http.Fields.from_list([(k, v.encode("utf-8")) for k, v in headers])
    except _Err as e:
        raise HttpError(f"a header is not allowed: {e.value}") from None
    outgoing = _http.OutgoingRequest(fields)
    outgoing.set_method(_method(method))
    outgoing.set_scheme(_http.Scheme_Https() if parts.scheme == "https" else _http.Scheme_Http())
    outgoing.set_authority(parts.netloc)
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    outgoing.set_path_with_query(path)
    outgoing_body = outgoing.body()
    try:
        future = _handler.handle(outgoing, None)
    except _Err as e:
        outgoing_body.__exit__(None, None, None)
        raise _error(e.value) from None
    # The body is written after `handle`: the host reads it as it is sent.
    stream = outgoing_body.write()
    try:
        for at in range(0, len(body), _WRITE_CHUNK):
            stream.blocking_write_and_flush(body[at : at + _WRITE_CHUNK])
    except _Err as e:
        stream.__exit__(None, None, None)
        # The host stops reading a body when the request failed; its answer
        # says why (a refusal, a reset), the closed stream only that it did.
        outgoing_body.__exit__(None, None, None)
        Pending(future, max_bytes).wait()
        raise HttpError(f"the request body was not sent: {e.value}") from None
    stream.__exit__(None, None, None)
    try:
        _http.OutgoingBody.finish(outgoing_body, None)
    except _Err as e:
        raise _error(e.value) from None
    return Pending(future, max_bytes)


def request(
    method: str,
    url: str,
    *,
    headers: Iterable[Tuple[str, str]] = (),
    body: bytes = b"",
    max_bytes: int = DEFAULT_MAX_BYTES,
) -> Response:
    """Sends a request and waits for the whole answer."""
    answer = start(method, url, headers=headers, body=body, max_bytes=max_bytes).wait()
    assert answer is not None  # waited without a timeout
    return answer


def _method(name: str) -> Any:
    known = {
        "GET": _http.Method_Get,
        "HEAD": _http.Method_Head,
        "POST": _http.Method_Post,
        "PUT": _http.Method_Put,
        "DELETE": _http.Method_Delete,
        "PATCH": _http.Method_Patch,
        "OPTIONS": _http.Method_Options,
    }
    kind = known.get(name.upper())
    return kind() if kind else _http.Method_Other(name)


def _error(code: Any) -> HttpError:
    """An HttpError for a wasi:http error-code; the host's refusal of an
    ungranted destination is marked ``denied``."""
    kind = type(code).__name__.removeprefix("ErrorCode_")
    value = getattr(code, "value", None)
    text = kind if value is None else f"{kind}: {value}"
    denied = kind in ("HttpRequestDenied", "DestinationIpProhibited")
    if denied:
        text = f"permission denied ({text}): the destination was not granted"
    return HttpError(f"HTTP request failed: {text}", denied=denied)


def _read_response(outcome: Any, max_bytes: int) -> Response:
    # outcome: result<result<incoming-response, error-code>> (the outer
    # error means the answer was already taken, which Pending prevents).
    if isinstance(outcome, _Err) or isinstance(outcome.value, _Err):
        inner = outcome.value if isinstance(outcome, _Err) else outcome.value.value
        raise _error(inner)
    incoming = outcome.value.value
    with incoming:
        with incoming.headers() as fields:
            headers = [(k.lower(), v.decode("utf-8", "replace")) for k, v in fields.entries()]
        status = incoming.status()
        body = incoming.consume()
        chunks = []
        size = 0
        with body:
            with body.stream() as stream:
                while True:
                    try:
                        chunk = stream.blocking_read(_READ_CHUNK)
                    except _Err as e:
                        if isinstance(e.value, _streams.StreamError_Closed):
                            break
                        raise HttpError(f"the answer broke off: {e.value}") from None
                    size += len(chunk)
                    if size > max_bytes:
                        raise HttpError(f"the answer is larger than {max_bytes} bytes")
                    chunks.append(chunk)
    return Response(status, headers, b"".join(chunks))
