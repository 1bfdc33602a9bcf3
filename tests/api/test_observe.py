"""Every request: an id, bounded metrics, one access log line; a 500 problem for the unexpected."""

import json
import logging

import pytest
from fastapi.testclient import TestClient

from service.config import Settings
from tests.conftest import make_client, problem


def test_the_request_id_is_echoed_or_made(client: TestClient) -> None:
    given = client.get("/healthz", headers={"X-Request-ID": "run-42.a"})
    assert given.headers["x-request-id"] == "run-42.a"
    made = client.get("/healthz", headers={"X-Request-ID": "no spaces; please"})
    assert (
        len(made.headers["x-request-id"]) == 32
        and made.headers["x-request-id"] != "no spaces; please"
    )


def test_one_json_access_line_per_request_without_tensors_or_keys(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with (
        make_client(Settings(api_keys="secret")) as client,
        caplog.at_level(logging.INFO, "loss_service.access"),
    ):
        client.post(
            "/v1/losses/cross_entropy",
            json={"input": [[1.25, 2.5, 3.75]], "target": [2]},
            headers={"Authorization": "Bearer secret", "X-Request-ID": "abc"},
        )
    # this request's line: another test's server may still be writing its last ones
    lines = [r for r in caplog.records if r.name == "loss_service.access"]
    (record,) = [r for r in lines if '"request_id": "abc"' in r.getMessage()]
    line = json.loads(record.getMessage())
    assert {
        k: line[k] for k in ("request_id", "protocol", "method", "route", "loss", "status")
    } == {
        "request_id": "abc",
        "protocol": "http",
        "method": "POST",
        "route": "/v1/losses/cross_entropy",
        "loss": "cross_entropy",
        "status": 200,
    }
    assert line["bytes_in"] > 0 and line["bytes_out"] > 0 and line["duration_ms"] > 0
    assert "secret" not in record.getMessage() and "1.25" not in record.getMessage()


def test_text_access_lines(caplog: pytest.LogCaptureFixture) -> None:
    with (
        make_client(Settings(log_format="text")) as client,
        caplog.at_level(logging.INFO, "loss_service.access"),
    ):
        client.get("/healthz", headers={"X-Request-ID": "t1"})
    (record,) = [r for r in caplog.records if r.name == "loss_service.access"]
    assert record.getMessage().startswith("GET /healthz 200 ")
    assert record.getMessage().endswith(" id=t1")


def test_unknown_paths_and_methods_collapse_into_one_label() -> None:
    with make_client() as client:
        for method in ("GET", "PUT", "DELETE", "PATCH", "FOO"):
            for path in ("/nowhere", "/v1/losses", "/v1/batch", "/v2/models/softmax/infer"):
                client.request(method, path)
        text = client.get("/metrics").text
    series = [line for line in text.splitlines() if line.startswith("loss_service_requests_total{")]
    unmatched = [line for line in series if 'route="unmatched"' in line]
    assert all('method="other"' in line for line in unmatched)
    assert {line.split("status=")[1].split("}")[0] for line in unmatched} == {'"404"', '"405"'}
    assert len(series) <= 6


def test_an_unexpected_error_is_a_500_problem_with_the_id_and_no_trace(
    caplog: pytest.LogCaptureFixture,
) -> None:
    app = make_client().app

    async def broken() -> None:
        raise ZeroDivisionError("a bug")

    app.add_api_route("/v1/broken", broken)  # type: ignore[attr-defined]
    app.add_api_route("/v2/broken", broken)  # type: ignore[attr-defined]
    with TestClient(app, raise_server_exceptions=False) as client, caplog.at_level(logging.ERROR):
        response = client.get("/v1/broken", headers={"X-Request-ID": "bug-1"})
        v2 = client.get("/v2/broken", headers={"X-Request-ID": "bug-2"})
    assert problem(response, 500)["detail"] == (
        "an unexpected error; it is logged with request id bug-1"
    )
    assert "ZeroDivisionError" not in response.text and "a bug" not in response.text
    assert v2.json() == {"error": "an unexpected error; it is logged with request id bug-2"}
    traces = [r for r in caplog.records if r.name == "loss_service.error"]
    assert [r.getMessage() for r in traces] == [
        "unexpected error in request bug-1",
        "unexpected error in request bug-2",
    ]
    assert traces[0].exc_info is not None
