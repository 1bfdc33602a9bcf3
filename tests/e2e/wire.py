"""HTTP/1.1 on a raw socket, for tests that need what no client library sends: pipelined
requests, bodies the server refuses before it reads them, malformed framing."""

import socket
import time
from dataclasses import dataclass

import orjson


def connect(url: str, timeout: float = 10) -> socket.socket:
    host, port = url.removeprefix("http://").split(":")
    return socket.create_connection((host, int(port)), timeout=timeout)


def request(
    method: str,
    path: str,
    body: bytes = b"",
    headers: dict[str, str] | None = None,
    length: bool = True,
) -> bytes:
    """One request's bytes: Host, the given headers, and Content-Length unless `length` is
    False (a chunked body, or a head alone)."""
    lines = [f"{method} {path} HTTP/1.1", "Host: test"]
    lines += [f"{name}: {value}" for name, value in (headers or {}).items()]
    given = {name.lower() for name in headers or {}}
    if length and (body or method in ("POST", "PUT")) and "content-length" not in given:
        lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


def post_json(path: str, content: object, headers: dict[str, str] | None = None) -> bytes:
    return request(
        "POST", path, orjson.dumps(content), {"Content-Type": "application/json", **(headers or {})}
    )


@dataclass
class Response:
    status: int
    headers: dict[str, str]
    """Names lowercased; a repeated header keeps its last value."""
    body: bytes

    def json(self) -> object:
        return orjson.loads(self.body)

    @property
    def closes(self) -> bool:
        return self.headers.get("connection", "").lower() == "close"


class Reader:
    """Reads the responses of one connection in order."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.buffer = b""
        self.answers: list[Response] = []
        """The responses read so far, where a caller keeps them."""

    def _fill(self) -> None:
        chunk = self.sock.recv(1 << 20)
        if not chunk:
            raise EOFError("the server closed the connection")
        self.buffer += chunk

    def response(self, head_only: bool = False) -> Response:
        """The next response; `head_only` for the answer to a HEAD request, which has none."""
        while b"\r\n\r\n" not in self.buffer:
            self._fill()
        head, self.buffer = self.buffer.split(b"\r\n\r\n", 1)
        status_line, *lines = head.decode("latin-1").split("\r\n")
        headers = {}
        for line in lines:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        size = 0 if head_only else int(headers.get("content-length", "0"))
        while len(self.buffer) < size:
            self._fill()
        body, self.buffer = self.buffer[:size], self.buffer[size:]
        return Response(int(status_line.split()[1]), headers, body)

    def closed(self, within: float = 10) -> bool:
        """Whether the server closes the connection, with nothing more sent, within `within`
        seconds (a reset counts as closed)."""
        deadline = time.monotonic() + within
        self.sock.settimeout(within)
        try:
            while time.monotonic() < deadline:
                chunk = self.sock.recv(65536)
                if not chunk:
                    return not self.buffer
                self.buffer += chunk
        except ConnectionResetError:
            return not self.buffer
        except TimeoutError:
            return False
        return False
