"""API keys: `Authorization: Bearer KEY` on /v1 and /v2 (and as gRPC metadata), compared in
constant time.

The keys come from LOSS_SERVICE_API_KEYS (comma-separated) and LOSS_SERVICE_API_KEYS_FILE
(one a line; blank lines and lines starting with # are skipped), re-read on SIGHUP. With none
the service is open. Health, readiness, metrics and the OpenAPI document stay open.
"""

import hmac
import logging
from pathlib import Path

from starlette.types import ASGIApp, Receive, Scope, Send

from service.config import Settings
from service.errors import Unauthorized

OPEN = ("/healthz", "/readyz", "/metrics", "/v2/health/", "/docs", "/redoc", "/openapi.json")
"""Paths (and prefixes) that never need a key."""
log = logging.getLogger("loss_service.auth")


class Keys:
    def __init__(self, settings: Settings) -> None:
        self._listed = [k.strip() for k in settings.api_keys.split(",") if k.strip()]
        self._file = settings.api_keys_file
        self._keys: list[bytes] = []
        self.reload()

    def reload(self) -> None:
        """Reads the keys again (the file's may have changed): on SIGHUP."""
        keys = list(self._listed)
        if self._file is not None:
            lines = Path(self._file).read_text().splitlines()
            keys += [line.strip() for line in lines if line.strip() and not line.startswith("#")]
        self._keys = [k.encode() for k in keys]
        log.info("API keys loaded: %d", len(self._keys))  # how many, never which

    @property
    def required(self) -> bool:
        return bool(self._keys)

    def refusal(
        self, header: bytes | None, send: str = "Authorization: Bearer KEY"
    ) -> Unauthorized | None:
        """Why a request with this Authorization header (or metadata) is refused: None where
        it may go on. `send` says how to send a key, in the refusal of a request without."""
        if not self.required:
            return None
        challenge = {"WWW-Authenticate": "Bearer"}
        if header is None:
            return Unauthorized(f"an API key is required: send {send}", headers=challenge)
        scheme, _, key = header.partition(b" ")
        if scheme.lower() != b"bearer" or not self.accepts(key.strip()):
            challenge["WWW-Authenticate"] = 'Bearer error="invalid_token"'
            return Unauthorized("the API key is not valid", headers=challenge)
        return None

    def accepts(self, key: bytes) -> bool:
        """Whether `key` is one of the keys; every key is compared, each in constant time."""
        found = False
        for known in self._keys:
            found |= hmac.compare_digest(known, key)
        return found


class Authenticate:
    """A pure ASGI middleware: 401 with `WWW-Authenticate: Bearer` for a /v1 or /v2 request
    without a key the service knows, when it knows any."""

    def __init__(self, app: ASGIApp, keys: Keys) -> None:
        self.app = app
        self.keys = keys

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and self.keys.required and guarded(scope["path"]):
            header = next((v for k, v in scope["headers"] if k.lower() == b"authorization"), None)
            error = self.keys.refusal(header)
            if error is not None:
                await error.response(scope["path"])(scope, receive, send)
                return
        await self.app(scope, receive, send)


def guarded(path: str) -> bool:
    if path.startswith(OPEN) or path in ("/v2/health",):
        return False
    return path.startswith(("/v1/", "/v2/")) or path in ("/v1", "/v2")
