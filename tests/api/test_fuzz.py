"""Schemathesis: requests generated from the OpenAPI document get documented answers, never a
5xx (503 aside), and responses that match their schemas.

In `make test` it runs derandomized, 25 examples per operation (the same ones on every run);
`make fuzz` runs it randomly, FUZZ_EXAMPLES per operation. Every 5xx it finds becomes a test
in tests/api/test_regressions.py.

A schema-valid request may still be rejected: JSON Schema cannot say that a class index must
be below C or that input needs two dimensions, so that one check is left out.
"""

import os

import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import positive_data_acceptance

from service.app import create_app

schema = schemathesis.openapi.from_asgi("/openapi.json", create_app())
EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "25"))


@schema.parametrize()
@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck))
def test_generated_requests(case: schemathesis.Case) -> None:
    case.call_and_validate(excluded_checks=[positive_data_acceptance])
