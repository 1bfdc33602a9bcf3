"""One case per validation rule: exact status, problem+json, and a message naming the field."""

from typing import Any

import pytest
from fastapi.testclient import TestClient

from service.config import Settings
from tests.conftest import make_client, problem

CE = "cross_entropy"
BCE = "binary_cross_entropy"
BCEL = "binary_cross_entropy_with_logits"
LOGITS = [[1.0, 2.0, 3.0], [0.5, 0.1, -1.0]]
CTC = {
    "log_probs": [[[-1.1, -1.1, -1.1]], [[-1.1, -1.1, -1.1]]],
    "targets": [[1, 2]],
    "input_lengths": [2],
    "target_lengths": [2],
}

# (loss, body, error type, loc, words the detail must contain)
# fmt: off
RULES: list[tuple[str, dict[str, Any], str, list[Any], str]] = [
    (CE, {"input": [[1, 2], [3]], "target": [0, 0]}, "ragged", ["body", "input", 1], "input[1] has 1"),
    (CE, {"input": [[1, 2], 3], "target": [0, 0]}, "ragged", ["body", "input", 1], "input[1] is a number"),
    (CE, {"input": [[1, "2"]], "target": [0]}, "not_a_number", ["body", "input", 0, 1], "input[0, 1] = \"2\""),
    (CE, {"input": [[1, True]], "target": [0]}, "not_a_number", ["body", "input", 0, 1], "input[0, 1] = true"),
    (CE, {"input": [[1, None]], "target": [0]}, "not_a_number", ["body", "input", 0, 1], "input[0, 1] = null"),
    (CE, {"input": [[1, [2]], [3, 4]], "target": [0, 0]}, "not_a_number", ["body", "input", 0, 1], "input[0, 1] = an array"),
    (CE, {"input": [[1, {"a": 1}]], "target": [0]}, "not_a_number", ["body", "input", 0, 1], "input[0, 1] = an object"),
    (CE, {"input": [[[[[[[[[1]]]]]]]]], "target": [0]}, "too_deep", ["body", "input"], "input has more than 8"),
    (CE, {"input": 1.0, "target": 0}, "rank", ["body", "input"], "input has 0 dimensions"),
    (CE, {"input": LOGITS, "target": [2.0, 1]}, "integer", ["body", "target"], "target holds floats (such as 2.0)"),
    (CE, {"input": LOGITS, "target": [1.5, 1]}, "integer", ["body", "target", 0], "target[0] = 1.5 is not an integer"),
    (CE, {"input": LOGITS, "target": [0, 7]}, "class_index_out_of_range", ["body", "target", 1], "target[1] = 7 is not a class index in [0, 3) and is not ignore_index (-100)"),
    (CE, {"input": LOGITS, "target": [0, -1]}, "class_index_out_of_range", ["body", "target", 1], "target[1] = -1"),
    (CE, {"input": LOGITS, "target": [0, 2**70]}, "out_of_range", ["body", "target", 1], "target[1] = 1180591620717411303424 does not fit in a signed 64-bit integer"),
    (CE, {"input": LOGITS, "target": [0, 2**63]}, "out_of_range", ["body", "target", 1], "does not fit in a signed 64-bit integer"),
    ("nll_loss", {"input": LOGITS, "target": [0, 1.0]}, "not_an_integer", ["body", "target", 1], "target[1] = 1.0 is not an integer; send integers (2, not 2.0)"),
    (CE, {"input": LOGITS, "target": [[0.5, 0.5, 0], [1.5, 0, 0]]}, "probability", ["body", "target", 1, 0], "target[1, 0] = 1.5 is not a probability in [0, 1]"),
    (BCE, {"input": [0.5, 1.2], "target": [0, 1]}, "probability", ["body", "input", 1], "input[1] = 1.2 is not a probability"),
    (BCE, {"input": [0.5, 0.2], "target": [0, -0.1]}, "probability", ["body", "target", 1], "target[1] = -0.1"),
    (BCEL, {"input": [0.5, 0.2], "target": [0, 2]}, "probability", ["body", "target", 1], "target[1] = 2"),
    ("sigmoid_focal_loss", {"input": [0.5], "target": [3]}, "probability", ["body", "target", 0], "target[0] = 3"),
    (CE, {"input": LOGITS, "target": [0, 1], "pos_wieght": [1]}, "extra_forbidden", ["body", "pos_wieght"], "unknown field 'pos_wieght'"),
    (CE, {"target": [0, 1]}, "missing", ["body", "input"], "input is required"),
    (CE, {"input": LOGITS, "target": [0, 1], "label_smoothing": 1.5}, "less_than_equal", ["body", "label_smoothing"], "label_smoothing"),
    (CE, {"input": LOGITS, "target": [0, 1], "ignore_index": 2.0}, "int_type", ["body", "ignore_index"], "ignore_index"),
    (CE, {"input": LOGITS, "target": [0, 1], "ignore_index": -(2**70)}, "greater_than_equal", ["body", "ignore_index"], "ignore_index"),
    (CE, {"input": LOGITS, "target": [0, 1], "grad": "yes"}, "bool_type", ["body", "grad"], "grad"),
    (CE, {"input": LOGITS, "target": [0, 1], "dtype": "float16"}, "literal_error", ["body", "dtype"], "dtype"),
    (CE, {"input": LOGITS, "target": [0, 1], "reduction": "batchmean"}, "literal_error", ["body", "reduction"], "reduction"),
    ("focal_loss", {"input": LOGITS, "target": [0, 1], "gamma": -1}, "greater_than_equal", ["body", "gamma"], "gamma"),
    ("sigmoid_focal_loss", {"input": [1.0], "target": [1], "alpha": 2}, "less_than_equal", ["body", "alpha"], "alpha"),
    (CE, {"input": LOGITS, "target": [0, 1, 2]}, "shape_mismatch", ["body", "target"], "target has shape (3,)"),
    (BCE, {"input": [[0.5, 0.5]], "target": [0.5, 0.5]}, "shape_mismatch", ["body", "target"], "target has shape (2,) but input has shape (1, 2)"),
    (BCE, {"input": [[0.5], [0.5]], "target": [[0.5], [0.5]], "weight": [1, 1, 1]}, "broadcast", ["body", "weight"], "weight of shape (3,) does not broadcast to input's shape (2, 1)"),
    (BCEL, {"input": [[0.5, 1]], "target": [[0, 1]], "pos_weight": [1, 2, 3]}, "broadcast", ["body", "pos_weight"], "pos_weight of shape (3,)"),
    (CE, {"input": LOGITS, "target": [0, 1], "weight": [1, 2]}, "shape_mismatch", ["body", "weight"], "weight has shape (2,)"),
    ("focal_loss", {"input": LOGITS, "target": [0, 1], "alpha": [1, 2]}, "shape_mismatch", ["body", "alpha"], "alpha has shape (2,)"),
    (CE, {"input": LOGITS, "target": [0, 1], "device": "cuda"}, "device_unavailable", ["body", "device"], "device 'cuda:0' is not available; this server has: cpu"),
    (CE, {"input": LOGITS, "target": [0, 1], "device": "cuda:3"}, "device_unavailable", ["body", "device"], "device 'cuda:3'"),
    (CE, {"input": LOGITS, "target": [0, 1], "device": "tpu"}, "string_pattern_mismatch", ["body", "device"], "device"),
    (CE, {"input": LOGITS, "target": [-100, -100]}, "all_ignored", ["body", "target"], "every target is ignore_index (-100)"),
    ("focal_loss", {"input": LOGITS, "target": [5, 5], "ignore_index": 5}, "all_ignored", ["body", "target"], "every target is ignore_index (5)"),
    (CE, {"input": LOGITS, "target": [0, 1], "weight": [0, 0, 1]}, "zero_weight_sum", ["body", "weight"], "weights of the targets sum to 0"),
    # every target a class index, but the ignored one among them
    (CE, {"input": LOGITS, "target": [1, 1], "ignore_index": 1}, "all_ignored", ["body", "target"], "every target is ignore_index (1)"),
    (CE, {"input": LOGITS, "target": [0, 1], "ignore_index": 1, "weight": [0, 1, 1]}, "zero_weight_sum", ["body", "weight"], "weights of the targets sum to 0"),
    (CE, {"input": LOGITS, "target": [[1, 0, 0], [0, 1, 0]], "ignore_index": -100}, "ignore_index_with_probabilities", ["body", "ignore_index"], "ignore_index applies to class-index targets"),
    ("mse_loss", {"input": [[1], [2], [3], [4]], "target": [1, 2, 3, 4]}, "shape_mismatch", ["body", "target"], "target has shape (4,) but input has shape (4, 1); they must be equal"),
    ("l1_loss", {"input": [1, 2], "target": [1, 2], "weight": [1]}, "shape_mismatch", ["body", "weight"], "weight has shape (1,) but input has shape (2,)"),
    ("smooth_l1_loss", {"input": [1], "target": [1], "beta": -1}, "greater_than_equal", ["body", "beta"], "beta"),
    ("huber_loss", {"input": [1], "target": [1], "delta": 0}, "greater_than", ["body", "delta"], "delta"),
    ("kl_div", {"input": [-1.0, -0.5], "target": [0.5, 1.5]}, "probability", ["body", "target", 1], "target[1] = 1.5 is not a probability in [0, 1]"),
    ("kl_div", {"input": [-1.0, -0.5], "target": [-0.5, 0.1], "log_target": True}, "log_probability", ["body", "target", 1], "target[1] = 0.1 is not a log-probability (<= 0)"),
    ("poisson_nll_loss", {"input": [1.0, 2.0], "target": [3, -1]}, "negative", ["body", "target", 1], "target[1] = -1.0 is negative; a Poisson count must be >= 0"),
    ("poisson_nll_loss", {"input": [-1.0], "target": [3], "log_input": False}, "negative", ["body", "input", 0], "input[0] = -1.0 is negative; a rate (log_input is false) must be >= 0"),
    ("poisson_nll_loss", {"input": [1.0], "target": [3], "eps": 0}, "greater_than", ["body", "eps"], "eps"),
    ("gaussian_nll_loss", {"input": [1.0, 2.0], "target": [1, 2], "var": [1, -0.5]}, "negative", ["body", "var", 1], "var[1] = -0.5 is negative; a variance must be >= 0"),
    ("gaussian_nll_loss", {"input": [[1.0, 2.0]], "target": [[1, 2]], "var": [1, 1, 1]}, "shape_mismatch", ["body", "var"], "var has shape (3,); for input of shape (1, 2)"),
    ("gaussian_nll_loss", {"input": [1.0], "target": [1], "var": [1], "eps": -1}, "greater_than", ["body", "eps"], "eps"),
    ("margin_ranking_loss", {"input1": [1.0, 2.0], "input2": [1.0, 0.0], "target": [1, 0]}, "sign", ["body", "target", 1], "target[1] = 0.0 is not 1 or -1"),
    ("margin_ranking_loss", {"input1": [1.0, 2.0], "input2": [1.0], "target": [1, 1]}, "shape_mismatch", ["body", "input2"], "input2 has shape (1,) but input1 has shape (2,)"),
    ("hinge_embedding_loss", {"input": [1.0], "target": [2]}, "sign", ["body", "target", 0], "target[0] = 2.0 is not 1 or -1"),
    ("soft_margin_loss", {"input": [[1.0, 2.0]], "target": [[1, 0.5]]}, "sign", ["body", "target", 0, 1], "target[0, 1] = 0.5 is not 1 or -1"),
    ("multilabel_soft_margin_loss", {"input": [[1.0, 2.0]], "target": [[1, 0.5]]}, "binary_label", ["body", "target", 0, 1], "target[0, 1] = 0.5 is not a label, 0 or 1"),
    ("multilabel_soft_margin_loss", {"input": [[1.0, 2.0]], "target": [[1, 0]], "weight": [1, 2, 3]}, "broadcast", ["body", "weight"], "weight of shape (3,) does not broadcast"),
    ("multilabel_margin_loss", {"input": [[1.0, 2.0]], "target": [[1, 2]]}, "class_index_out_of_range", ["body", "target", 0, 1], "target[0, 1] = 2 is neither a class index in [0, 2) nor the end marker -1"),
    ("multilabel_margin_loss", {"input": [[1.0, 2.0]], "target": [[1, 0.0]]}, "not_an_integer", ["body", "target", 0, 1], "target[0, 1] = 0.0 is not an integer; send integers (2, not 2.0)"),
    ("multi_margin_loss", {"input": [[1.0, 2.0]], "target": [0], "p": 3}, "literal_error", ["body", "p"], "p"),
    ("multi_margin_loss", {"input": [[1.0, 2.0]], "target": [2]}, "class_index_out_of_range", ["body", "target", 0], "target[0] = 2 is not a class index in [0, 2)"),
    ("multi_margin_loss", {"input": [[1.0, 2.0]], "target": [1], "weight": [1]}, "shape_mismatch", ["body", "weight"], "weight has shape (1,); it needs one value per class, shape (2,)"),
    ("cosine_embedding_loss", {"input1": [[1.0, 2.0]], "input2": [[1.0, 0.0]], "target": [[1]]}, "shape_mismatch", ["body", "target"], "target has shape (1, 1) but input1 without its last dimension has shape (1,)"),
    ("cosine_embedding_loss", {"input1": [[1.0, 2.0]], "input2": [[1.0, 0.0]], "target": [0]}, "sign", ["body", "target", 0], "target[0] = 0.0 is not 1 or -1"),
    ("triplet_margin_loss", {"anchor": [[1.0]], "positive": [[1.0]], "negative": [[1.0]], "margin": 0}, "greater_than", ["body", "margin"], "margin"),
    ("triplet_margin_loss", {"anchor": [[1.0]], "positive": [[1.0]], "negative": [[1.0]], "p": 0}, "greater_than", ["body", "p"], "p"),
    ("triplet_margin_loss", {"anchor": [[1.0, 2.0]], "positive": [[1.0]], "negative": [[1.0, 2.0]]}, "shape_mismatch", ["body", "positive"], "positive has shape (1, 1) but anchor has shape (1, 2)"),
    ("triplet_margin_with_distance_loss", {"anchor": [1.0], "positive": [1.0], "negative": [1.0], "distance": "l1"}, "literal_error", ["body", "distance"], "distance"),
    ("ctc_loss", CTC | {"input_lengths": [3]}, "length_out_of_range", ["body", "input_lengths", 0], "input_lengths[0] = 3 is longer than log_probs' 2 time steps"),
    ("ctc_loss", CTC | {"input_lengths": [-1]}, "negative", ["body", "input_lengths", 0], "input_lengths[0] = -1 is negative"),
    ("ctc_loss", CTC | {"input_lengths": [1, 1]}, "shape_mismatch", ["body", "input_lengths"], "input_lengths has shape (2,) but log_probs' batch (N) has shape (1,)"),
    ("ctc_loss", CTC | {"target_lengths": [3]}, "length_out_of_range", ["body", "target_lengths", 0], "target_lengths[0] = 3 is longer than targets' 2 columns"),
    ("ctc_loss", CTC | {"blank": 3}, "class_index_out_of_range", ["body", "blank"], "blank = 3 is not a class index in [0, 3)"),
    ("ctc_loss", CTC | {"targets": [[1, 0]]}, "label_out_of_range", ["body", "targets", 0, 1], "targets[0, 1] = 0 is not a label: a class index in [0, 3) other than blank (0)"),
    ("ctc_loss", CTC | {"targets": [[1, 5]]}, "label_out_of_range", ["body", "targets", 0, 1], "targets[0, 1] = 5"),
    ("ctc_loss", CTC | {"targets": [1, 2, 1]}, "shape_mismatch", ["body", "targets"], "targets holds 3 labels but target_lengths sum to 2"),
    ("ctc_loss", CTC | {"targets": [[1.0, 2]]}, "not_an_integer", ["body", "targets", 0, 0], "targets[0, 0] = 1.0 is not an integer; send integers (2, not 2.0)"),
    ("ctc_loss", CTC | {"log_probs": [[-1.0, -1.0]], "input_lengths": 1, "target_lengths": 1, "targets": [1, 2]}, "shape_mismatch", ["body", "targets"], "targets holds 2 labels but target_lengths sum to 1"),
    ("mse_loss", {"input": 1e39, "target": 0}, "float32_overflow", ["body", "input"], "input = 1e+39 is beyond float32's range; send dtype float64"),
    (CE, {"input": [[1, -1e39]], "target": [0]}, "float32_overflow", ["body", "input", 0, 1], "input[0, 1] = -1e+39 is beyond float32's range; send dtype float64"),
    (CE, {"input": [], "target": []}, "empty", ["body", "input"], "input of shape (0,) is empty"),
    (CE, {"input": [[]], "target": [0]}, "empty", ["body", "input"], "input of shape (1, 0) is empty"),
    (BCEL, {"input": [], "target": []}, "empty", ["body", "input"], "input of shape (0,) is empty"),
]
# fmt: on


@pytest.mark.parametrize(("loss", "body", "type", "loc", "words"), RULES)
def test_rule(client: TestClient, loss: str, body: dict, type: str, loc: list, words: str) -> None:
    found = problem(client.post(f"/v1/losses/{loss}", json=body), 422)
    assert found["title"] == "Unprocessable Content"
    assert words in found["detail"]
    assert found["errors"][0] == {"loc": loc, "msg": found["errors"][0]["msg"], "type": type}
    assert str(loc[1]) in found["errors"][0]["msg"]


def test_every_bad_field_is_listed(client: TestClient) -> None:
    body = {"input": LOGITS, "target": [0, 1], "reduction": "avg", "label_smoothing": "x"}
    found = problem(client.post("/v1/losses/cross_entropy", json=body), 422)
    assert [e["loc"] for e in found["errors"]] == [
        ["body", "label_smoothing"],
        ["body", "reduction"],
    ]


@pytest.mark.parametrize(
    "content",
    [
        b"{",
        b"",
        b"[1, 2",
        b'{"input": [NaN]}',
        b'{"input": [Infinity]}',
        b'{"input": [1e400]}',
    ],
)
def test_invalid_json_is_400(client: TestClient, content: bytes) -> None:
    response = client.post(
        "/v1/losses/cross_entropy", content=content, headers={"content-type": "application/json"}
    )
    assert problem(response, 400)["detail"].startswith("the body is not valid JSON")


@pytest.mark.parametrize("content", [b"[1, 2]", b"3", b'"input"'])
def test_a_body_that_is_not_an_object_is_422(client: TestClient, content: bytes) -> None:
    response = client.post(
        "/v1/losses/cross_entropy", content=content, headers={"content-type": "application/json"}
    )
    assert problem(response, 422)["detail"] == "the body must be a JSON object"


def test_a_field_given_twice_counts_once_the_last_time(client: TestClient) -> None:
    content = b'{"input": [[1, 2]], "target": [7], "target": [1], "reduction": "none"}'
    response = client.post(
        "/v1/losses/cross_entropy", content=content, headers={"content-type": "application/json"}
    )
    assert response.json()["loss"] == pytest.approx([0.31326169])


@pytest.mark.parametrize("content_type", ["text/plain", "application/x-www-form-urlencoded", None])
def test_a_non_json_content_type_is_415(client: TestClient, content_type: str | None) -> None:
    headers = {"content-type": content_type} if content_type else {}
    response = client.post("/v1/losses/cross_entropy", content=b"{}", headers=headers)
    assert "Content-Type must be application/json" in problem(response, 415)["detail"]


def test_json_with_a_charset_is_accepted(client: TestClient) -> None:
    response = client.post(
        "/v1/losses/cross_entropy",
        content=b'{"input": [[1, 2]], "target": [0]}',
        headers={"content-type": "application/json; charset=utf-8"},
    )
    assert response.status_code == 200


@pytest.fixture(scope="module")
def small() -> TestClient:
    with make_client(Settings(max_body_bytes=1000, max_elements=100)) as client:
        yield client


def test_a_body_over_max_body_bytes_is_413(small: TestClient) -> None:
    body = {"input": [[0.123456789] * 50] * 4, "target": [0] * 4}
    found = problem(small.post("/v1/losses/cross_entropy", json=body), 413)
    assert found["title"] == "Content Too Large"
    assert found["detail"] == "the body exceeds max_body_bytes (1000 bytes)"


def test_a_streamed_body_over_max_body_bytes_is_413(small: TestClient) -> None:
    """No Content-Length: the limit holds while the chunks arrive."""

    def chunks():
        yield b'{"input": ['
        for _ in range(200):
            yield b"1.0, "
        yield b"1.0]}"

    response = small.post(
        "/v1/losses/cross_entropy", content=chunks(), headers={"content-type": "application/json"}
    )
    assert "max_body_bytes" in problem(response, 413)["detail"]


def test_tensors_over_max_elements_are_413(small: TestClient) -> None:
    body = {"input": [[1] * 60, [2] * 60], "target": [0, 0]}
    found = problem(small.post("/v1/losses/cross_entropy", json=body), 413)
    assert found["detail"] == "the tensors hold more than max_elements (100) elements"


def test_a_fault_in_a_late_chunk_of_a_large_body_is_named(client: TestClient) -> None:
    """The body is read in place, chunk by chunk; a refusal leaves it intact, so the problem
    is the element's 422, not a 400 for a body mangled on the way."""
    logits = [[0.25] * 100 for _ in range(3000)]
    logits[2999][5] = [1.0]
    response = client.post("/v1/losses/cross_entropy", json={"input": logits, "target": [0] * 3000})
    body = problem(response, 422)
    assert body["errors"][0]["loc"] == ["body", "input", 2999, 5]
    assert body["detail"] == "input[2999, 5] = an array is not a number"
