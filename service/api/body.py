"""Reading a request body: media type first, then at most max_body_bytes while it streams."""

from starlette.requests import Request

from service.errors import PayloadTooLarge, UnsupportedMediaType


def is_json(content_type: str) -> bool:
    """application/json or application/<anything>+json, with any parameters."""
    media = content_type.partition(";")[0].strip().lower()
    return media == "application/json" or (
        media.startswith("application/") and media.endswith("+json")
    )


async def read_json_body(request: Request, limit: int) -> bytearray:
    """The whole body, or 415 for a non-JSON content type and 413 past `limit` bytes."""
    content_type = request.headers.get("content-type", "")
    if not is_json(content_type):
        raise UnsupportedMediaType(
            f"Content-Type must be application/json, not '{content_type or 'none'}'"
        )
    return await read_body(request, limit)


async def read_body(request: Request, limit: int) -> bytearray:
    """The whole body, or 413 past `limit` bytes.

    The limit holds while the body streams in, so an oversized upload is never buffered whole.
    """
    too_large = PayloadTooLarge(f"the body exceeds max_body_bytes ({limit} bytes)")
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise too_large
    body = bytearray()  # one buffer that grows, not a list of chunks joined into a second copy
    async for chunk in request.stream():
        if len(body) + len(chunk) > limit:
            raise too_large
        body += chunk
    return body


class Body:
    """A request body handed to the code that parses it, which takes it: the endpoint keeps
    no reference, so the body is freed as soon as its tensors have been read."""

    def __init__(self, data: bytearray) -> None:
        self._data: bytearray | None = data
        self._size = len(data)

    def __len__(self) -> int:
        return self._size

    def take(self) -> bytearray:
        data, self._data = self._data, None
        if data is None:
            raise RuntimeError("the body was taken already")
        return data
