"""HTTP/1.1 conformance of the connection layer (service.http, service.api.framing), against
the app served by uvicorn with the service's protocol on 127.0.0.1, from raw sockets and from
tritonclient: pipelining, refusals before the body is read, Expect, chunked bodies, keep-alive
after every 4xx, transfer codings, request smuggling and HEAD.

The rule under every refusal: the server either reads and discards the body and keeps the
connection, or says Connection: close and closes it; it never reads body bytes as a request.
"""

import gzip
import json
import re
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager, suppress

import numpy as np
import pytest
import torch
import torch.nn.functional as F
import tritonclient.http as triton
from tritonclient.utils import InferenceServerException

from tests.e2e.conftest import Running, running
from tests.e2e.wire import Reader, Response, connect, post_json, request

KEY = {"Authorization": "Bearer secret"}
LIMIT = 8_000_000
"""max_body_bytes of the module's server: bodies of several MB on either side of it."""
GOOD = post_json("/v1/losses/mse_loss", {"input": [1.0], "target": [0.0]}, KEY)


@pytest.fixture(scope="module")
def server() -> Iterator[Running]:
    with running(api_keys="secret", max_body_bytes=LIMIT, header_timeout=2.0) as served:
        yield served


@contextmanager
def exchange(url: str, data: bytes, count: int) -> Iterator[Reader]:
    """Sends `data` (in a thread: the server answers while it arrives) and reads `count`
    responses from the same connection (`answers`); the socket closes with the block."""
    with connect(url) as sock:
        sender = threading.Thread(target=_send_all, args=(sock, data))
        sender.start()
        reader = Reader(sock)
        try:
            reader.answers = [reader.response() for _ in range(count)]
            yield reader
        finally:
            sender.join(30)


def _send_all(sock: socket.socket, data: bytes) -> None:
    with suppress(OSError):  # the server closed first, as it may after a refusal that closes
        sock.sendall(data)


def assert_good(response: Response) -> None:
    assert response.status == 200, response.body
    assert response.json() == {
        "loss": 1.0,
        "reduction": "mean",
        "shape": [],
        "dtype": "float32",
        "device": "cpu",
        "divisor": 1.0,
    }


@pytest.mark.parametrize("count", [1, 34, 100, 1000])
def test_pipelined_requests_are_each_answered_in_order(server: Running, count: int) -> None:
    requests = b"".join(
        post_json("/v1/losses/mse_loss", {"input": [float(i)], "target": [0.0]}, KEY)
        for i in range(count)
    )
    with exchange(server.url, requests, count) as reader:
        responses = reader.answers
        assert [r.status for r in responses] == [200] * count
        assert [r.json()["loss"] for r in responses] == [float(i * i) for i in range(count)]  # type: ignore[index]
        assert not any(r.closes for r in responses)


BODY = b" " * 4_000_000
"""A body of several MB that the server refuses before reading it."""
JSON = {"Content-Type": "application/json"}


@pytest.mark.parametrize(
    ("refused", "status", "detail"),
    [
        (
            request("POST", "/v1/losses/mse_loss", BODY, JSON),
            401,
            "an API key is required: send Authorization: Bearer KEY",
        ),
        (
            request("POST", "/v1/losses/mse_loss", BODY, {**JSON, "Authorization": "Bearer x"}),
            401,
            "the API key is not valid",
        ),
        (request("POST", "/v1/losses/hinge", BODY, {**JSON, **KEY}), 404, "unknown loss 'hinge'"),
        (
            request("POST", "/v2/models/hinge/infer", BODY, KEY),
            404,
            "unknown model 'hinge'",
        ),
        (
            request("PUT", "/v1/losses/mse_loss", BODY, {**JSON, **KEY}),
            405,
            "PUT is not allowed on this path",
        ),
        (
            request("POST", "/v1/losses/mse_loss", BODY, {"Content-Type": "text/csv", **KEY}),
            415,
            "Content-Type must be application/json, not 'text/csv'",
        ),
    ],
)
def test_a_refusal_before_the_body_keeps_the_connection(
    server: Running, refused: bytes, status: int, detail: str
) -> None:
    with exchange(server.url, refused + GOOD, 2) as reader:
        (first, second) = reader.answers
        assert first.status == status
        assert not first.closes
        body = first.json()
        message = body["detail"] if "detail" in body else body["error"]  # type: ignore[operator, index]
        assert message.startswith(detail)
        assert_good(second)


def test_a_body_declared_past_the_limit_is_refused_and_the_connection_closed(
    server: Running,
) -> None:
    head = request(
        "POST", "/v1/losses/mse_loss", headers={**JSON, **KEY, "Content-Length": str(LIMIT + 1)}
    )
    with exchange(server.url, head + b" " * 1_000_000, 1) as reader:
        (refused,) = reader.answers
        assert refused.status == 413
        assert refused.closes
        assert refused.json()["detail"] == f"the body exceeds max_body_bytes ({LIMIT} bytes)"  # type: ignore[index]
        assert reader.closed()


def test_a_refused_body_that_never_ends_is_cut_after_header_timeout(server: Running) -> None:
    """The server discards the rest of a refused body, but not for ever: 2 s here."""
    head = request("POST", "/v1/losses/hinge", headers={**JSON, **KEY, "Content-Length": "1000"})
    with exchange(server.url, head + b" " * 10, 1) as reader:
        (refused,) = reader.answers
        assert refused.status == 404
        assert not refused.closes
        assert reader.closed(within=10)


def binary_inputs(rows: int, classes: int) -> tuple[list[triton.InferInput], np.ndarray]:
    rng = np.random.default_rng(rows)
    logits = rng.normal(size=(rows, classes)).astype(np.float32)
    target = rng.integers(0, classes, rows)
    inputs = [
        triton.InferInput("input", list(logits.shape), "FP32"),
        triton.InferInput("target", list(target.shape), "INT64"),
    ]
    inputs[0].set_data_from_numpy(logits)
    inputs[1].set_data_from_numpy(target)
    expected = F.cross_entropy(torch.from_numpy(logits).double(), torch.from_numpy(target))
    return inputs, expected.numpy()


def test_tritonclient_after_each_early_refusal(server: Running) -> None:
    """tritonclient reuses its connection: a refusal of a 4 MB binary request must leave it
    fit for the next request (an unread body was once parsed as the next request's head)."""
    client = triton.InferenceServerClient(server.url.removeprefix("http://"))
    inputs, expected = binary_inputs(10_000, 100)
    refusals = [
        ("cross_entropy", {}, 401, "an API key is required"),
        ("cross_entropy", {"Authorization": "Bearer wrong"}, 401, "the API key is not valid"),
        ("hinge", KEY, 404, "unknown model 'hinge'"),
    ]
    for model, headers, status, message in refusals:
        with pytest.raises(InferenceServerException) as refused:
            client.infer(model, inputs, headers=headers)
        assert refused.value.status() == str(status)
        assert refused.value.message().startswith(message)
        result = client.infer("cross_entropy", inputs, headers=KEY)
        np.testing.assert_allclose(result.as_numpy("loss"), expected, rtol=1e-6)
    client.close()


def test_tritonclient_past_the_body_limit_then_within_it(server: Running) -> None:
    client = triton.InferenceServerClient(server.url.removeprefix("http://"))
    too_large, _ = binary_inputs(30_000, 100)  # 12 MB
    with pytest.raises(InferenceServerException) as refused:
        client.infer("cross_entropy", too_large, headers=KEY)
    assert refused.value.status() == "413"
    inputs, expected = binary_inputs(1000, 100)
    result = client.infer("cross_entropy", inputs, headers=KEY)
    np.testing.assert_allclose(result.as_numpy("loss"), expected, rtol=1e-6)
    client.close()


def test_expect_100_continue_is_answered_when_the_body_is_wanted(server: Running) -> None:
    body = b'{"input": [1.0], "target": [0.0]}'
    head = request(
        "POST",
        "/v1/losses/mse_loss",
        headers={**JSON, **KEY, "Content-Length": str(len(body)), "Expect": "100-continue"},
    )
    with connect(server.url) as sock:
        sock.sendall(head)
        reader = Reader(sock)
        assert reader.response().status == 100
        sock.sendall(body)
        assert_good(reader.response())
        sock.sendall(GOOD)
        assert_good(reader.response())


def test_expect_100_continue_refused_first_closes(server: Running) -> None:
    """No 100 Continue was sent, so the client may send the body or not: the connection is
    closed rather than guessed at."""
    head = request(
        "POST",
        "/v1/losses/mse_loss",
        headers={**JSON, "Content-Length": "1000", "Expect": "100-continue"},
    )
    with exchange(server.url, head, 1) as reader:
        (refused,) = reader.answers
        assert refused.status == 401
        assert refused.closes
        assert reader.closed()


def chunked(data: bytes, size: int = 7) -> bytes:
    pieces = [data[i : i + size] for i in range(0, len(data), size)]
    return b"".join(b"%x\r\n%s\r\n" % (len(p), p) for p in pieces) + b"0\r\n\r\n"


def test_a_chunked_body_is_read_and_the_connection_kept(server: Running) -> None:
    body = chunked(b'{"input": [1.0], "target": [0.0]}')
    headers = {**JSON, **KEY, "Transfer-Encoding": "chunked"}
    first = request("POST", "/v1/losses/mse_loss", body, headers, length=False)
    with exchange(server.url, first + GOOD, 2) as reader:
        (one, two) = reader.answers
        assert_good(one)
        assert_good(two)


def test_a_chunked_body_refused_first_closes(server: Running) -> None:
    """Its length is unknown: discarding it could take for ever."""
    headers = {**JSON, **KEY, "Transfer-Encoding": "chunked"}
    refused = request("POST", "/v1/losses/hinge", chunked(b" " * 100), headers, length=False)
    with exchange(server.url, refused, 1) as reader:
        (answer,) = reader.answers
        assert answer.status == 404
        assert answer.closes
        assert reader.closed()


def gzip_bomb() -> bytes:
    return gzip.compress(b"[" + b"0," * (LIMIT // 2) + b"0]")


@pytest.mark.parametrize(
    ("bad", "status"),
    [
        (request("POST", "/v1/losses/mse_loss", b"{", {**JSON, **KEY}), 400),
        (request("GET", "/nowhere", headers=KEY), 404),
        (request("DELETE", "/v1/losses/mse_loss", headers=KEY), 405),
        (
            request(
                "POST",
                "/v1/losses/mse_loss",
                gzip_bomb(),
                {**JSON, **KEY, "Content-Encoding": "gzip"},
            ),
            413,
        ),
        (request("POST", "/v1/losses/mse_loss", b"{}", {**KEY, "Content-Type": "a/b"}), 415),
        (post_json("/v1/losses/cross_entropy", {"input": [[1.0]], "target": [3]}, KEY), 422),
        (post_json("/v2/models/cross_entropy/infer", {"inputs": 1}, KEY), 400),
    ],
)
def test_keep_alive_after_every_4xx(server: Running, bad: bytes, status: int) -> None:
    with exchange(server.url, bad + GOOD, 2) as reader:
        (first, second) = reader.answers
        assert first.status == status, first.body
        assert not first.closes
        assert_good(second)


@pytest.mark.parametrize(
    ("coding", "status", "detail"),
    [
        (
            "gzip, chunked",
            501,
            "Transfer-Encoding 'gzip, chunked' is not supported: send the body chunked alone (or"
            " with a Content-Length), compressed with Content-Encoding if you like",
        ),
        ("gzip", 400, "Transfer-Encoding 'gzip' does not end in chunked: the body has no length"),
    ],
)
def test_unknown_transfer_codings(server: Running, coding: str, status: int, detail: str) -> None:
    headers = {**JSON, **KEY, "Transfer-Encoding": coding}
    sent = request("POST", "/v1/losses/mse_loss", chunked(gzip.compress(b"{}")), headers, False)
    with exchange(server.url, sent + GOOD, 1) as reader:
        (answer,) = reader.answers
        assert answer.status == status
        assert answer.closes
        assert answer.json()["detail"] == detail  # type: ignore[index]
        assert reader.closed()


SMUGGLED = request("GET", "/healthz")


@pytest.mark.parametrize(
    "head",
    [
        # Content-Length and Transfer-Encoding: which frames the body is ambiguous.
        b"POST /v1/losses/mse_loss HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\n"
        b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
        # Two different lengths.
        b"POST /v1/losses/mse_loss HTTP/1.1\r\nHost: t\r\nContent-Length: 0\r\n"
        b"Content-Length: 50\r\n\r\n",
        # A header folded onto a second line (obs-fold), which RFC 9112 forbids.
        b"POST /v1/losses/mse_loss HTTP/1.1\r\nHost: t\r\nContent-Length: 0\r\n"
        b"X-Folded: a\r\n b\r\n\r\n",
    ],
    ids=["length and chunked", "two lengths", "obs-fold"],
)
def test_smuggling_is_a_400_that_closes(server: Running, head: bytes) -> None:
    with exchange(server.url, head + SMUGGLED, 1) as reader:
        (answer,) = reader.answers
        assert answer.status == 400
        assert answer.closes
        assert answer.json()["detail"].startswith("the request is not valid HTTP/1.1")  # type: ignore[index]
        assert reader.closed()  # the request after it is never answered


def test_head_is_get_without_the_body(server: Running) -> None:
    with connect(server.url) as sock:
        sock.sendall(request("HEAD", "/healthz") + request("HEAD", "/v1/info", headers=KEY) + GOOD)
        reader = Reader(sock)
        health = reader.response(head_only=True)
        assert health.status == 200
        assert health.headers["content-length"] == "15"
        assert reader.response(head_only=True).status == 200
        assert_good(reader.response())


def test_a_refusal_of_the_head_waits_for_the_answers_before_it(server: Running) -> None:
    """Pipelined: good requests, then one with too many headers and one not even HTTP; the
    refusal comes after the good requests' answers, and the connection closes."""
    crowded = b"GET /healthz HTTP/1.1\r\n" + b"".join(b"X-%d: 1\r\n" % i for i in range(101))
    with exchange(server.url, GOOD * 3 + crowded + b"\r\n" + b"NOT HTTP\r\n\r\n", 4) as reader:
        *answers, refused = reader.answers
        for answer in answers:
            assert_good(answer)
        assert refused.status == 431
        assert refused.json()["detail"] == "the request has more than 100 headers"  # type: ignore[index]
        assert reader.closed()


def test_the_probe_port_serves_only_the_probes_and_the_metrics(server: Running) -> None:
    for path in ("/healthz", "/readyz", "/v2/health/live", "/v2/health/ready", "/metrics"):
        with exchange(server.probe_url, request("GET", path), 1) as reader:
            (answer,) = reader.answers
            assert answer.status == 200, path
    with exchange(server.probe_url, GOOD, 1) as reader:
        (answer,) = reader.answers
        assert answer.status == 404
        assert answer.json()["detail"] == (  # type: ignore[index]
            "the probe port serves only /healthz, /metrics, /readyz, /v2/health/live,"
            " /v2/health/ready"
        )


def test_refusals_of_the_connection_layer_are_identified_counted_and_logged(
    server: Running, caplog: pytest.LogCaptureFixture
) -> None:
    """The 400, 408 and 431 the protocol writes itself carry an X-Request-ID like the app's
    answers, and count in /metrics (method "other", route "unmatched")."""
    crowded = b"GET /healthz HTTP/1.1\r\n" + b"".join(b"X-%d: 1\r\n" % i for i in range(101))
    smuggled = b"POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 0\r\nContent-Length: 5\r\n\r\n"
    caplog.set_level("INFO", logger="loss_service.access")
    for sent, status in ((crowded + b"\r\n", 431), (smuggled, 400)):
        with exchange(server.url, sent, 1) as reader:
            (answer,) = reader.answers
        assert answer.status == status
        assert re.fullmatch("[0-9a-f]{32}", answer.headers["x-request-id"])
        logged = [json.loads(r.getMessage()) for r in caplog.records]
        assert {"request_id": answer.headers["x-request-id"], "status": status}.items() <= (
            logged[-1].items()
        )
    with exchange(server.probe_url, request("GET", "/metrics"), 1) as reader:
        (metrics,) = reader.answers
    for status in (400, 431):
        labels = f'loss="",method="other",protocol="http",route="unmatched",status="{status}"'
        assert f"loss_service_requests_total{{{labels}}}".encode() in metrics.body
