"""Every rule of a grade request: the exact status, and a message naming the field, the index
and the rule. Also the /v2 model and the batch item, derived from the same declarations."""

import json
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient

from tests.conftest import problem

LOGITS = [[2.0, 0.5, -1.0], [0.1, 0.2, 0.3]]
BASE = {"input": LOGITS, "target": [0, 2], "task": "multiclass", "input_kind": "logits"}


def refused(
    client: TestClient, path: str, body: dict[str, Any], status: int = 422
) -> dict[str, Any]:
    found = problem(client.post(path, json=body), status)
    assert len(found["errors"]) == 1, found
    error: dict[str, Any] = found["errors"][0]
    assert found["detail"] == error["msg"]
    return error


@pytest.mark.parametrize(
    ("path", "change", "loc", "msg", "kind"),
    [
        ("accuracy", {"task": None}, ["task"], "task: Field required", "missing"),
        (
            "accuracy",
            {"input_kind": "scores"},
            ["input_kind"],
            "input_kind: Input should be 'logits', 'probabilities' or 'predictions'",
            "literal_error",
        ),
        (
            "regression",
            {},
            ["task"],
            "regression grades the tasks regression, not multiclass",
            "task_unsupported",
        ),
        (
            "calibration_error",
            {"task": "multilabel", "target": [[0, 1, 1], [1, 0, 0]]},
            ["task"],
            "calibration_error grades the tasks binary, multiclass, not multilabel",
            "task_unsupported",
        ),
        (
            "auroc",
            {"input_kind": "predictions", "input": [0, 2], "num_classes": 3},
            ["input_kind"],
            "auroc needs input_kind logits or probabilities, not predictions",
            "input_kind_unsupported",
        ),
        (
            "accuracy",
            {"input": [0.2, 0.5]},
            ["input"],
            "input has 1 dimensions (shape (2,)); expected (N, C) for multiclass",
            "rank",
        ),
        (
            "accuracy",
            {"target": [0, 3]},
            ["target", 1],
            "target[1] = 3 is not a class index in [0, 3)",
            "class_index_out_of_range",
        ),
        (
            "accuracy",
            {"target": [0.0, 2.0]},
            ["target"],
            (
                "target holds floats (such as 2.0); each class index must be an integer: in JSON"
                " without a fraction or an exponent, on /v2 and gRPC with an integer datatype"
                " (INT64, INT32, ...)"
            ),
            "integer",
        ),
        (
            "accuracy",
            {"target": [0, -1], "ignore_index": -100},
            ["target", 1],
            "target[1] = -1 is not a class index in [0, 3) and is not ignore_index (-100)",
            "class_index_out_of_range",
        ),
        (
            "accuracy",
            {"target": [0]},
            ["target"],
            (
                "target has shape (1,) but one class index per sample has shape (2,); they must be"
                " equal"
            ),
            "shape_mismatch",
        ),
        (
            "accuracy",
            {"num_classes": 4},
            ["num_classes"],
            "num_classes is 4 but input has 3 columns",
            "shape_mismatch",
        ),
        (
            "accuracy",
            {"input_kind": "predictions", "input": [0, 2]},
            ["num_classes"],
            "num_classes is required for multiclass predictions: the input does not show it",
            "missing",
        ),
        (
            "accuracy",
            {"input_kind": "predictions", "input": [0, 5], "num_classes": 3},
            ["input", 1],
            "input[1] = 5 is not a class index in [0, 3)",
            "class_index_out_of_range",
        ),
        (
            "accuracy",
            {"input": [[0.5], [0.5]], "target": [0, 0]},
            ["input"],
            "input has 1 class; multiclass needs at least 2",
            "too_few_classes",
        ),
        (
            "brier_score",
            {"input_kind": "probabilities", "input": [[0.5, 0.5, 0.0], [0.5, 0.6, 0.0]]},
            ["input", 1],
            (
                "input[1] sums to 1.1; each row of probabilities must sum to 1 (within 0.001): send"
                " logits with input_kind logits"
            ),
            "probabilities_sum",
        ),
        (
            "brier_score",
            {"input_kind": "probabilities", "input": [[0.5, 0.5, 0.0], [1.5, -0.5, 0.0]]},
            ["input", 1, 0],
            "input[1, 0] = 1.5 is not a probability in [0, 1]",
            "probability",
        ),
        (
            "accuracy",
            {"task": "binary", "input": [0.3, 2.0], "target": [1, 2]},
            ["target", 1],
            "target[1] = 2 is not a label, 0 or 1",
            "binary_label",
        ),
        (
            "accuracy",
            {"task": "binary", "input_kind": "predictions", "input": [1, 3], "target": [1, 0]},
            ["input", 1],
            "input[1] = 3 is not a prediction, 0 or 1",
            "binary_label",
        ),
        (
            "accuracy",
            {"task": "multilabel", "target": [0, 1]},
            ["target"],
            "target has shape (2,) but input has shape (2, 3); they must be equal",
            "shape_mismatch",
        ),
        (
            "accuracy",
            {"sample_weight": [1.0]},
            ["sample_weight"],
            "sample_weight has shape (1,); it needs one weight per sample, shape (2,)",
            "shape_mismatch",
        ),
        (
            "accuracy",
            {"sample_weight": [1.0, -2.0]},
            ["sample_weight", 1],
            "sample_weight[1] = -2.0 is negative; a sample's weight must be >= 0",
            "negative",
        ),
        (
            "accuracy",
            {"top_k": 4},
            ["top_k"],
            "top_k = 4 is more than the 3 classes",
            "top_k_range",
        ),
        (
            "accuracy",
            {"top_k": 2, "task": "binary", "input": [0.1, 0.2], "target": [0, 1]},
            ["top_k"],
            "top_k = 2 needs multiclass logits or probabilities: it ranks classes",
            "top_k_unsupported",
        ),
        (
            "calibration_error",
            {"n_bins": 0},
            ["n_bins"],
            "n_bins: Input should be greater than or equal to 1",
            "greater_than_equal",
        ),
        (
            "auroc",
            {"thresholds": [0.5, 0.2]},
            ["thresholds"],
            "thresholds: Value error, thresholds[1] = 0.2 is not above 0.5",
            "value_error",
        ),
        (
            "auroc",
            {"thresholds": [0.5, 1.5]},
            ["thresholds"],
            "thresholds: Value error, thresholds must lie in [0, 1]",
            "value_error",
        ),
        (
            "auroc",
            {"thresholds": 1},
            ["thresholds"],
            "thresholds: Value error, a count of thresholds is 2 to 10000, not 1",
            "value_error",
        ),
        (
            "auroc",
            {"average": "micro"},
            ["average"],
            "average: Input should be 'macro', 'weighted' or 'none'",
            "literal_error",
        ),
        (
            "regression",
            {
                "task": "regression",
                "input_kind": "predictions",
                "input": [1.0, 2.0],
                "target": [1.0],
            },
            ["target"],
            "target has shape (1,) but input has shape (2,); they must be equal",
            "shape_mismatch",
        ),
        (
            "accuracy",
            {"task": "multilabel", "input": [[0.3], [0.1]], "target": [[1], [0]]},
            ["input"],
            "input has 1 label; multilabel needs 2 or more (one label is task binary, with"
            " input and target (N))",
            "too_few_labels",
        ),
        (
            "regression",
            {
                "task": "regression",
                "input_kind": "predictions",
                "input": [1.0, 2.0],
                "target": [2.0, -100.0],
                "ignore_index": -100,
            },
            ["ignore_index"],
            "ignore_index leaves out class labels; regression targets are values, and none is"
            " left out (drop such samples, or give them sample_weight 0)",
            "ignore_index_regression",
        ),
    ],
)
def test_a_rule_broken(
    client: TestClient, path: str, change: dict[str, Any], loc: list[Any], msg: str, kind: str
) -> None:
    body = {k: v for k, v in (BASE | change).items() if v is not None}
    error = refused(client, f"/v1/grades/{path}", body)
    assert error == {"loc": ["body", *loc], "msg": msg, "type": kind}


@pytest.mark.parametrize(
    ("metrics", "loc", "msg", "kind"),
    [
        (
            {"a": {"metric": "acuracy"}},
            ["metrics", "a", "metric"],
            (
                "unknown metric 'acuracy'; known: accuracy, confusion_matrix, calibration_error,"
                " brier_score, log_loss, auroc, average_precision, regression"
            ),
            "unknown_metric",
        ),
        (
            {"a": {"metric": {}}},
            ["metrics", "a", "metric"],
            "metric must be a metric's name, a string",
            "string_type",
        ),
        (
            {"a b": {}},
            ["metrics", "a b"],
            "metrics key 'a b' must be 1 to 64 letters, digits, '_' or '-'",
            "key",
        ),
        (
            {"top": {"metric": "accuracy", "top_k": 9}},
            ["metrics", "top", "top_k"],
            "top_k = 9 is more than the 3 classes",
            "top_k_range",
        ),
        (
            {"top": {"metric": "accuracy", "topk": 2}},
            ["metrics", "top", "topk"],
            "metrics.top.topk: Extra inputs are not permitted",
            "extra_forbidden",
        ),
        (
            {},
            ["metrics"],
            "metrics: Dictionary should have at least 1 item after validation, not 0",
            "too_short",
        ),
        (
            {f"m{i}": {"metric": "accuracy"} for i in range(33)},
            ["metrics"],
            "metrics: Dictionary should have at most 32 items after validation, not more",
            "too_long",
        ),
    ],
)
def test_a_metrics_rule_broken(
    client: TestClient, metrics: Any, loc: list[Any], msg: str, kind: str
) -> None:
    error = refused(client, "/v1/grades", BASE | {"metrics": metrics})
    assert error == {"loc": ["body", *loc], "msg": msg, "type": kind}


def test_an_unknown_metric_is_404_with_the_nearest(client: TestClient) -> None:
    found = problem(client.post("/v1/grades/acuracy", json=BASE), 404)
    assert found["detail"].startswith(
        "unknown metric 'acuracy'; did you mean 'accuracy'? known: accuracy,"
    )


def test_every_target_ignored_gives_null_with_a_warning(client: TestClient) -> None:
    body = BASE | {"target": [-1, -1], "ignore_index": -1}
    found = client.post("/v1/grades/accuracy", json=body).json()
    assert found["values"] == {"accuracy": None}
    assert found["warnings"] == [
        "accuracy: 1 of 1 values are not finite (NaN or infinity), written as null"
    ]


def test_the_catalogue_and_the_v2_model_derive_from_the_declaration(client: TestClient) -> None:
    catalogue = client.get("/v1/grades").json()
    assert catalogue["finalize"]["path"] == "/v1/grades/finalize"
    names = [entry["name"] for entry in catalogue["grades"]]
    assert names == [
        "accuracy",
        "confusion_matrix",
        "calibration_error",
        "brier_score",
        "log_loss",
        "auroc",
        "average_precision",
        "regression",
        "grades",
    ]
    entry = client.get("/v1/grades/regression").json()
    assert entry["state"]["m2_target"] == {"merge": "moments"}
    assert entry["values"] == ["mse", "mae", "r2", "pearson"]
    metadata = client.get("/v2/models/auroc").json()
    assert [o["name"] for o in metadata["outputs"]] == [
        "auroc",
        "state.tp",
        "state.fp",
        "state.positives",
        "state.negatives",
    ]
    assert {o["datatype"] for o in metadata["outputs"]} == {"FP64"}
    assert [(i["name"], i["datatype"], i["shape"]) for i in metadata["inputs"]] == [
        ("input", "FP32", [-1, -1]),
        ("target", "INT64", [-1]),
        ("sample_weight", "FP32", [-1]),
    ]
    assert [o["shape"] for o in metadata["outputs"]] == [[], [-1, -1], [-1, -1], [-1], [-1]]
    regression = client.get("/v2/models/regression").json()
    assert [i["datatype"] for i in regression["inputs"]] == ["FP32", "FP32", "FP32"]


def test_v2_and_a_batch_item_answer_as_v1(client: TestClient) -> None:
    v1 = client.post("/v1/grades/accuracy", json=BASE | {"top_k": 2}).json()
    inputs = [
        {"name": "input", "shape": [2, 3], "datatype": "FP32", "data": np.ravel(LOGITS).tolist()},
        {"name": "target", "shape": [2], "datatype": "INT64", "data": [0, 2]},
    ]
    parameters = {"task": "multiclass", "input_kind": "logits", "top_k": 2}
    v2 = client.post(
        "/v2/models/accuracy/infer", json={"inputs": inputs, "parameters": parameters}
    ).json()
    outputs = {o["name"]: o["data"] for o in v2["outputs"]}
    assert outputs["accuracy"] == [v1["values"]["accuracy"]]
    assert outputs["state.tp"] == v1["state"]["arrays"]["tp"]
    settings = {"accuracy": {"metric": "accuracy", "settings": v1["state"]["settings"]}}
    assert json.loads(v2["parameters"]["grades"]) == settings
    several = {"metrics": '{"top": {"metric": "accuracy", "top_k": 2}}'}
    shared = {"task": "multiclass", "input_kind": "logits"}
    v2 = client.post(
        "/v2/models/grades/infer", json={"inputs": inputs, "parameters": shared | several}
    ).json()
    assert {o["name"]: o["data"] for o in v2["outputs"]}["top.accuracy"] == [
        v1["values"]["accuracy"]
    ]
    batch = client.post(
        "/v1/batch", json={"items": [BASE | {"grade": "accuracy", "top_k": 2}]}
    ).json()
    assert batch["results"] == [{"ok": True} | v1]


def test_a_state_past_the_work_budget_is_refused_before_it_is_made(client: TestClient) -> None:
    """Two predictions of 10**6 classes would make a (10**6, 10**6) confusion matrix."""
    body = BASE | {"input": [0, 1], "input_kind": "predictions", "num_classes": 10**6}
    found = problem(client.post("/v1/grades/confusion_matrix", json=body), 413)
    assert found["max_work"] == 1.0
    assert found["work"] > 10**4
    assert found["fixed_work"] > 10**4  # no cut of the batch makes it fit: the client knows
    assert "of it does not shrink with the batch" in found["detail"]
    assert client.post("/v1/grades/accuracy", json=body).status_code == 200


def test_v2_answers_what_the_task_gives(client: TestClient) -> None:
    """Multilabel has no kappa or MCC: /v2 lists what the finalisation gives, no more."""
    inputs = [
        {"name": "input", "shape": [2, 3], "datatype": "FP32", "data": np.ravel(LOGITS).tolist()},
        {"name": "target", "shape": [2, 3], "datatype": "INT64", "data": [1, 0, 1, 0, 0, 1]},
    ]
    parameters = {"task": "multilabel", "input_kind": "logits"}
    for model, extra in (("confusion_matrix", {}), ("grades", {"metrics": "confusion_matrix"})):
        answer = client.post(
            f"/v2/models/{model}/infer", json={"inputs": inputs, "parameters": parameters | extra}
        )
        assert answer.status_code == 200, answer.text
        names = [o["name"].removeprefix("confusion_matrix.") for o in answer.json()["outputs"]]
        assert names == ["precision", "recall", "f1", "state.matrix"]


@pytest.mark.parametrize("task", ["multiclass", "binary"])
def test_integer_scores_are_taken_as_floats(client: TestClient, task: str) -> None:
    """One-hot probabilities and whole-number logits, as users write them: a 500 once (torch's
    softmax and log loss take no integers)."""
    metrics = ["accuracy", "calibration_error", "brier_score", "log_loss", "auroc"]
    if task == "multiclass":
        scores, target = [[0, 1, 0], [0, 0, 1], [1, 0, 0], [0, 1, 0]], [1, 2, 0, 0]
    else:
        scores, target = [0, 1, 1, 0], [0, 1, 0, 0]
    for kind in ("logits", "probabilities"):
        body = {"input": scores, "target": target, "task": task, "input_kind": kind}
        as_ints = client.post("/v1/grades", json=body | {"metrics": metrics})
        floats = np.asarray(scores, dtype=float).tolist()
        as_floats = client.post("/v1/grades", json=body | {"metrics": metrics, "input": floats})
        assert as_ints.status_code == 200, as_ints.text
        assert as_ints.json() == as_floats.json()
