"""The one exception the client raises for a refused call."""

from typing import Any


class LossServiceError(Exception):
    """A call the server refused: `status` is the HTTP status, `problem` the problem document
    (RFC 9457; for a /v2 answer, {"status", "detail"} built from its {"error": ...}), and the
    message is the problem's detail."""

    def __init__(self, status: int, problem: dict[str, Any]) -> None:
        super().__init__(str(problem.get("detail", f"HTTP {status}")))
        self.status = status
        self.problem = problem

    @property
    def detail(self) -> str:
        return str(self)
