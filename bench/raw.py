"""A raw ASGI app around one function of the whole body: the floors' shared frame, with no
framework (lifespan, one buffer for the body, one response)."""

from collections.abc import Awaitable, Callable
from typing import Any

ASGI = Callable[[dict[str, Any], Any, Any], Awaitable[None]]


def app_of(answer: Callable[[bytearray], bytes]) -> ASGI:
    """An app that answers every request with answer(body) as JSON (`{}` for the harness's
    readiness probe, GET /openapi.json)."""

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    await send({"type": "lifespan.startup.complete"})
                else:
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        body = bytearray()
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        reply = answer(body) if scope["path"] != "/openapi.json" else b"{}"
        headers = [(b"content-type", b"application/json")]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": reply})

    return app
