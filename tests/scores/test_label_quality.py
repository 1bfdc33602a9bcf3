"""label_quality against cleanlab (and torch for cross_entropy) in float64, by /v1 and /v2."""

from typing import Any

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from cleanlab.internal.label_quality_utils import get_normalized_entropy
from cleanlab.multilabel_classification import get_label_quality_scores as multilabel_scores
from cleanlab.rank import get_label_quality_scores
from fastapi.testclient import TestClient
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from service.scores import SCORES
from tests.conftest import problem
from tests.losses.strategies import LOGITS

EXAMPLES = settings(max_examples=60, deadline=None)
CLEANLAB = SCORES[:3]


@st.composite
def multiclass(draw: st.DrawFn) -> tuple[np.ndarray, np.ndarray]:
    rows, classes = draw(st.integers(1, 6)), draw(st.integers(2, 5))
    logits = draw(arrays(np.float64, (rows, classes), elements=LOGITS))
    return logits, draw(arrays(np.int64, (rows,), elements=st.integers(0, classes - 1)))


@st.composite
def multilabel(draw: st.DrawFn) -> tuple[np.ndarray, np.ndarray]:
    """Two classes or more, the last one given at least once and some label 0: cleanlab's
    reference reads the class count off the labels and takes only matrices of 0s and 1s."""
    rows, classes = draw(st.integers(1, 6)), draw(st.integers(2, 5))
    logits = draw(arrays(np.float64, (rows, classes), elements=LOGITS))
    labels = draw(arrays(np.int64, (rows, classes), elements=st.integers(0, 1)))
    labels[0, -1], labels[0, 0] = 1, 0
    return logits, labels


def post(client: TestClient, body: dict[str, Any]) -> dict[str, Any]:
    response = client.post("/v1/label_quality", json=body | {"dtype": "float64"})
    assert response.status_code == 200, response.text
    answer: dict[str, Any] = response.json()
    return answer


def softmax(logits: np.ndarray) -> np.ndarray:
    return torch.softmax(torch.from_numpy(logits), dim=1).numpy()


@EXAMPLES
@given(case=multiclass())
def test_multiclass_scores_match_cleanlab(client: TestClient, case: Any) -> None:
    logits, labels = case
    body = post(
        client, {"input": logits.tolist(), "target": labels.tolist(), "scores": list(SCORES)}
    )
    p = softmax(logits)
    for method in CLEANLAB:
        expected = get_label_quality_scores(labels, p, method=method)
        np.testing.assert_allclose(body["scores"][method], expected, rtol=0, atol=1e-6)
    np.testing.assert_allclose(body["scores"]["entropy"], get_normalized_entropy(p), atol=1e-6)
    cross_entropy = F.cross_entropy(
        torch.from_numpy(logits), torch.from_numpy(labels), reduction="none"
    )
    np.testing.assert_allclose(body["scores"]["cross_entropy"], cross_entropy.numpy(), rtol=1e-10)
    assert body["predicted"] == logits.argmax(1).tolist()
    assert (body["dtype"], body["device"]) == ("float64", "cpu")


@EXAMPLES
@given(case=multilabel(), method=st.sampled_from(CLEANLAB))
def test_multilabel_scores_match_cleanlab(client: TestClient, case: Any, method: str) -> None:
    logits, labels = case
    body = post(
        client,
        {
            "input": logits.tolist(),
            "target": labels.tolist(),
            "multi_label": True,
            "scores": [method],
        },
    )
    p = torch.sigmoid(torch.from_numpy(logits)).numpy()
    given_labels = [list(np.flatnonzero(row)) for row in labels]
    expected = multilabel_scores(given_labels, p, method=method)
    np.testing.assert_allclose(body["scores"][method], expected, rtol=0, atol=1e-6)
    assert body["predicted"] == (logits > 0).astype(int).tolist()


def test_multilabel_entropy_and_cross_entropy_are_means_over_classes(client: TestClient) -> None:
    logits = np.array([[2.0, -1.0, 0.5], [-3.0, 0.0, 4.0]])
    labels = np.array([[1, 0, 0], [0, 1, 1]])
    body = post(
        client,
        {
            "input": logits.tolist(),
            "target": labels.tolist(),
            "multi_label": True,
            "scores": ["entropy", "cross_entropy"],
        },
    )
    x, y = torch.from_numpy(logits), torch.from_numpy(labels).double()
    bce = F.binary_cross_entropy_with_logits(x, y, reduction="none").mean(1)
    np.testing.assert_allclose(body["scores"]["cross_entropy"], bce.numpy(), rtol=1e-12)
    p = torch.sigmoid(x).numpy()
    bits = -(p * np.log2(p) + (1 - p) * np.log2(1 - p)).mean(1)
    np.testing.assert_allclose(body["scores"]["entropy"], bits, rtol=1e-12)


def test_the_default_scores_are_cleanlabs_three(client: TestClient) -> None:
    body = post(client, {"input": [[1, 2, 3]], "target": [0]})
    assert list(body["scores"]) == list(CLEANLAB)


def test_the_catalogue_entry(client: TestClient) -> None:
    entry = client.get("/v1/label_quality").json()
    assert entry["name"] == "label_quality"
    assert entry["parameters"]["scores"]["default"] == list(CLEANLAB)


@pytest.mark.parametrize(
    ("body", "detail"),
    [
        (
            {"input": [[1.0]], "target": [0]},
            "input has 1 class; label quality compares classes and needs at least 2",
        ),
        ({"input": [[1, 2]], "target": [2]}, "target[0] = 2 is not a class index in [0, 2)"),
        (
            {"input": [[1, 2]], "target": [[0, 2]], "multi_label": True},
            "target[0, 1] = 2 is not a label, 0 or 1",
        ),
        (
            {"input": [[1, 2]], "target": [0], "scores": []},
            "scores: List should have at least 1 item after validation, not 0",
        ),
        (
            {"input": [[1, 2]], "target": [0], "scores": ["margin"]},
            "scores.0: Input should be 'self_confidence', 'normalized_margin', 'confidence_weighted_entropy', 'entropy' or 'cross_entropy'",
        ),
        (
            {"input": [[1, 2]], "target": [0], "scores": ["entropy", "entropy"]},
            "scores: Value error, 'entropy' is listed 2 times",
        ),
        ({"input": [1, 2], "target": 0}, "input has 1 dimensions (shape (2,)); expected (N, C)"),
    ],
)
def test_bad_requests(client: TestClient, body: dict, detail: str) -> None:
    assert problem(client.post("/v1/label_quality", json=body), 422)["detail"] == detail


def test_label_quality_is_a_v2_model_with_scores_as_a_string(client: TestClient) -> None:
    body = {
        "inputs": [
            {"name": "input", "shape": [2, 3], "datatype": "FP64", "data": [1, 2, 3, 3, 0, 0]},
            {"name": "target", "shape": [2], "datatype": "INT64", "data": [2, 1]},
        ],
        "parameters": {"dtype": "float64", "scores": "self_confidence, normalized_margin"},
    }  # spaces after a comma, as people write a list
    answer = client.post("/v2/models/label_quality/infer", json=body).json()
    outputs = {o["name"]: o for o in answer["outputs"]}
    assert list(outputs) == ["self_confidence", "normalized_margin", "predicted"]
    assert outputs["predicted"] == {
        "name": "predicted",
        "datatype": "INT64",
        "shape": [2],
        "data": [2, 0],
    }
    p = softmax(np.array([[1.0, 2, 3], [3, 0, 0]]))
    expected = get_label_quality_scores(np.array([2, 1]), p, method="normalized_margin")
    np.testing.assert_allclose(outputs["normalized_margin"]["data"], expected, atol=1e-12)
