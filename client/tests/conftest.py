"""The client against `loss-service serve` on 127.0.0.1 (the server's own e2e helper)."""

from collections.abc import Iterator

import pytest

import tests.conftest  # noqa: F401  (hypothesis' profiles: derandomized, no deadline)
from tests.e2e.conftest import serving


@pytest.fixture(scope="session")
def url() -> Iterator[str]:
    with serving() as found:
        yield found


@pytest.fixture(scope="session")
def small() -> Iterator[str]:
    """A server whose limits split 1,000-sample calls into a few parts."""
    with serving(max_elements="6000", max_body_bytes="60000", max_concurrency="3") as found:
        yield found
