"""JSON response bodies: whole, or a large result's pieces, each written when the last is sent."""

import asyncio
from collections.abc import AsyncIterator, Iterator

from starlette.responses import Response, StreamingResponse

from service.tensors.json import Piece


def json_response(content: bytes | Iterator[Piece]) -> Response:
    """content (service.tensors.json.encode's) as an application/json response.

    Starlette iterates a plain iterator in a worker thread, a hop for every piece; a piece is
    orjson's text of a block of rows, made holding the GIL, so the thread bought nothing but
    the hops (8 ms of a 1024x1000 gradient). The pieces are made here on the event loop, which
    serves the other requests between two of them.
    """
    if isinstance(content, bytes):
        return Response(content, media_type="application/json")
    return StreamingResponse(_on_the_loop(content), media_type="application/json")


async def _on_the_loop(pieces: Iterator[Piece]) -> AsyncIterator[Piece]:
    for piece in pieces:
        yield piece
        await asyncio.sleep(0)  # the other requests' turn
