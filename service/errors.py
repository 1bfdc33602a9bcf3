"""The ServiceError family and its problem+json rendering (RFC 9457).

Every error the service answers with is a ServiceError: an HTTP status, a detail that names the
field, the index and the rule, and a list of located errors. The engine raises them without
knowing about HTTP; the adapters prefix locations ("body", ...) and render them.
"""

import difflib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from http import HTTPStatus
from typing import Any

import orjson
from starlette.responses import Response

from service.types import Loc

PROBLEM_JSON = "application/problem+json"
TITLES = {413: "Content Too Large", 422: "Unprocessable Content"}
"""RFC 9110's reason phrases where Python's http module still has the older ones."""


@dataclass(frozen=True, slots=True)
class ErrorItem:
    loc: Loc
    msg: str
    type: str


class ServiceError(Exception):
    """An error with an HTTP status; `title` is the status's reason phrase. `members` are
    machine-readable facts beside the detail (RFC 9457's extension members), in the problem
    document and in /v2's error alike: a client acts on them without reading the prose."""

    status: int = HTTPStatus.INTERNAL_SERVER_ERROR

    def __init__(
        self,
        detail: str,
        errors: Sequence[ErrorItem] = (),
        headers: dict[str, str] | None = None,
        members: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__(detail)
        self.detail = detail
        self.errors = tuple(errors)
        self.headers = headers or {}
        self.members = dict(members or {})

    @classmethod
    def at(cls, loc: Loc, msg: str, type: str) -> "ServiceError":
        """One located error whose message is also the detail."""
        return cls(msg, [ErrorItem(loc, msg, type)])

    def under(self, *prefix: str | int) -> "ServiceError":
        """The same error with every location prefixed, e.g. under("body")."""
        errors = [ErrorItem((*prefix, *e.loc), e.msg, e.type) for e in self.errors]
        moved = type(self)(self.detail, errors, self.headers, self.members)
        moved.status = self.status
        return moved

    def problem(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "type": "about:blank",
            "title": TITLES.get(self.status) or HTTPStatus(self.status).phrase,
            "status": self.status,
            "detail": self.detail,
        }
        if self.errors:
            body["errors"] = [
                {"loc": list(e.loc), "msg": e.msg, "type": e.type} for e in self.errors
            ]
        return body | self.members

    def response(self, path: str = "") -> Response:
        """A problem document, or on a /v2 path the Open Inference Protocol's {"error": detail},
        with the same status and headers."""
        if path == "/v2" or path.startswith("/v2/"):
            content = orjson.dumps({"error": self.detail} | self.members)
            return Response(content, self.status, self.headers, media_type="application/json")
        return Response(
            orjson.dumps(self.problem()),
            status_code=self.status,
            headers=self.headers,
            media_type=PROBLEM_JSON,
        )


class Unauthorized(ServiceError):
    status = HTTPStatus.UNAUTHORIZED


class InternalError(ServiceError):
    """What the catch-all answers for an unexpected exception (service.metrics.Observe)."""

    status = HTTPStatus.INTERNAL_SERVER_ERROR


class BadRequest(ServiceError):
    status = HTTPStatus.BAD_REQUEST


class NotFound(ServiceError):
    status = HTTPStatus.NOT_FOUND


class MethodNotAllowed(ServiceError):
    status = HTTPStatus.METHOD_NOT_ALLOWED


class RequestTimeout(ServiceError):
    status = HTTPStatus.REQUEST_TIMEOUT


class PayloadTooLarge(ServiceError):
    status = HTTPStatus.REQUEST_ENTITY_TOO_LARGE


class UnsupportedMediaType(ServiceError):
    status = HTTPStatus.UNSUPPORTED_MEDIA_TYPE


class Invalid(ServiceError):
    status = HTTPStatus.UNPROCESSABLE_ENTITY


class Unavailable(ServiceError):
    status = HTTPStatus.SERVICE_UNAVAILABLE


class Unimplemented(ServiceError):
    status = HTTPStatus.NOT_IMPLEMENTED


def from_validation_errors(errors: Iterable[Mapping[str, Any]]) -> Invalid:
    """pydantic's error list as one Invalid naming each field: "reduction: Input should be..."."""
    items = [
        ErrorItem(
            tuple(e["loc"]), f"{'.'.join(map(str, e['loc'])) or 'body'}: {e['msg']}", e["type"]
        )
        for e in errors
    ]
    return Invalid("; ".join(item.msg for item in items), items)


def not_found(names: Sequence[str], what: str, name: str) -> NotFound:
    """An unknown name, with the nearest known one if any is close, and all the known ones."""
    close = difflib.get_close_matches(name, names, n=1)
    guess = f"; did you mean '{close[0]}'?" if close else ";"
    return NotFound(f"unknown {what} '{name}'{guess} known: {', '.join(names)}")
