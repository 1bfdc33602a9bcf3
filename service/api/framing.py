"""HTTP/1.1 framing that the app answers for (RFC 9110, RFC 9112), as a pure ASGI middleware.

- **A refusal before the body is read** (an unknown route, a missing key, a wrong media type,
  a declared length past max_body_bytes) keeps the connection when the server can discard the
  rest of the body: a Content-Length of at most max_body_bytes, which the server reads and
  drops (service.http bounds the time). Otherwise the answer says `Connection: close` and the
  connection closes after it: a chunked body of unknown length, a Content-Length past the
  limit, or an `Expect: 100-continue` the app never answered, after which the client may send
  the body or not. Either way no byte of a body is ever read as a request.
- **HEAD** is answered as GET is, without the body (the server leaves it out).
"""

from starlette.types import ASGIApp, Message, Receive, Scope, Send

CHUNKED = -1


class Framing:
    def __init__(self, app: ASGIApp, max_body_bytes: int) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if scope["method"] == "HEAD":  # a copy: the server still sees HEAD, and sends no body
            scope = {**scope, "method": "GET"}
        length, expect = _framing(scope["headers"])
        if not length:
            await self.app(scope, receive, send)
            return
        asked = received = False

        async def tracked() -> Message:
            nonlocal asked, received
            asked = True
            message = await receive()
            received = received or not message.get("more_body", False)
            return message

        async def framed(message: Message) -> None:
            if message["type"] == "http.response.start" and not received:
                unknown = length == CHUNKED or length > self.max_body_bytes
                if unknown or (expect and not asked):
                    message = _closing(message)
            await send(message)

        await self.app(scope, tracked, framed)


def _framing(headers: list[tuple[bytes, bytes]]) -> tuple[int, bool]:
    """The body's declared length (0 for none, CHUNKED), and whether the client waits for a
    100 Continue before sending it."""
    length, expect = 0, False
    for name, value in headers:
        if name == b"content-length":
            length = int(value) if value.isdigit() else CHUNKED  # the parser checked it
        elif name == b"transfer-encoding":
            length = CHUNKED
        elif name == b"expect":
            expect = value.lower() == b"100-continue"
    return length, expect


def _closing(start: Message) -> Message:
    headers = start.get("headers", [])
    if any(name.lower() == b"connection" for name, _ in headers):
        return start
    return {**start, "headers": [*headers, (b"connection", b"close")]}
