"""What the client raises: LossServiceError for a call the server refused, and two kinds of it
for a call that never reached the server (InvalidCall) or could not (ConnectionFailed)."""

from typing import Any


class LossServiceError(Exception):
    """A call that failed: `status` is the HTTP status (0 where no answer came), `problem` the
    problem document (RFC 9457; for a /v2 answer, {"status", "detail"} built from its
    {"error": ...}), and the message is the problem's detail: one line."""

    def __init__(self, status: int, problem: dict[str, Any]) -> None:
        super().__init__(str(problem.get("detail", f"HTTP {status}")))
        self.status = status
        self.problem = problem

    @property
    def detail(self) -> str:
        return str(self)


class InvalidCall(LossServiceError, ValueError):
    """The call was refused here, before anything was sent: an unknown tensor or parameter,
    labels that are not class indices, a value a tensor cannot take."""

    def __init__(self, detail: str) -> None:
        super().__init__(0, {"type": "about:blank", "status": 0, "detail": detail})


class ConnectionFailed(LossServiceError):
    """No answer: the service could not be reached, or did not answer in time."""

    def __init__(self, detail: str) -> None:
        super().__init__(0, {"type": "about:blank", "status": 0, "detail": detail})
