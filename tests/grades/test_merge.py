"""States of parts, merged by POST /v1/grades/finalize, against the whole: unweighted counts
exactly, the rest to float tolerance, data with a large offset included."""

import os
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.conftest import problem
from tests.grades.conftest import grades, multiclass, splits

METRICS = {
    "accuracy": {},
    "top_2": {"metric": "accuracy", "top_k": 2, "average": "macro"},
    "confusion_matrix": {},
    "calibration_error": {"n_bins": 10},
    "brier_score": {},
    "log_loss": {},
    "auroc": {"thresholds": 20},
    "average_precision": {"thresholds": [0.1, 0.5, 0.9]},
}
JSON = {"content-type": "application/json"}
EXAMPLES = settings(max_examples=int(os.environ.get("FUZZ_EXAMPLES", "20")))
COUNTS = ("accuracy", "top_2", "confusion_matrix", "auroc", "average_precision")


def finalize(client: TestClient, states: dict[str, list[Any]]) -> dict[str, Any]:
    response = client.post("/v1/grades/finalize", json={"states": states})
    assert response.status_code == 200, response.text
    found: dict[str, Any] = response.json()["grades"]
    return found


def merged(
    client: TestClient, metrics: Any, parts: list[slice], **arrays: np.ndarray
) -> dict[str, Any]:
    """Each part graded alone, and the parts' states finalised together."""
    options = {k: v for k, v in arrays.items() if not isinstance(v, np.ndarray)}
    tensors = {k: v for k, v in arrays.items() if isinstance(v, np.ndarray)}
    answers = [
        grades(client, metrics, **{k: v[s] for k, v in tensors.items()}, **options) for s in parts
    ]
    return finalize(client, {key: [a[key]["state"] for a in answers] for key in answers[0]})


@EXAMPLES
@given(multiclass(low=3), st.data(), st.booleans())
def test_merged_over_any_split_is_the_whole(client: TestClient, batch, data, weighted) -> None:
    arrays = {"input": batch["logits"], "target": batch["target"]}
    if weighted:
        arrays["sample_weight"] = batch["weight"]
    kind = {"task": "multiclass", "input_kind": "logits"}
    whole = grades(client, METRICS, **arrays, **kind)
    parts = merged(client, METRICS, splits(len(batch["target"]), data), **arrays, **kind)
    for key, grade in whole.items():
        for name, array in grade["state"]["arrays"].items():
            if key in COUNTS and not weighted:
                np.testing.assert_array_equal(parts[key]["state"]["arrays"][name], array, key)
            else:
                np.testing.assert_allclose(
                    parts[key]["state"]["arrays"][name], array, rtol=1e-12, atol=1e-9, err_msg=key
                )
        for name, found in grade["values"].items():
            np.testing.assert_allclose(
                parts[key]["values"][name], found, rtol=1e-9, err_msg=f"{key} {name}"
            )


@EXAMPLES
@given(st.integers(0, 2**32 - 1), st.integers(2, 400), st.data())
def test_regression_merged_even_with_a_large_offset(client: TestClient, seed, n, data) -> None:
    rng = np.random.default_rng(seed)
    y = 1e6 + rng.normal(size=n)
    arrays = {
        "input": y + rng.normal(scale=0.3, size=n),
        "target": y,
        "sample_weight": rng.uniform(0.1, 3.0, n),
    }
    kind = {"task": "regression", "input_kind": "predictions"}
    whole = grades(client, ["regression"], **arrays, **kind)["regression"]["values"]
    parts = merged(client, ["regression"], splits(n, data), **arrays, **kind)["regression"][
        "values"
    ]
    for name, found in whole.items():
        # y ~ 1e6 holds 1e-10 absolute: R2 near 0 amplifies it, hence an absolute floor
        assert parts[name] == pytest.approx(found, rel=1e-9, abs=1e-8), name


def test_a_single_state_finalises_to_its_own_answer(client: TestClient) -> None:
    rng = np.random.default_rng(1)
    x, y = rng.normal(size=(40, 3)), rng.integers(0, 3, 40)
    whole = grades(client, METRICS, input=x, target=y, task="multiclass", input_kind="logits")
    again = finalize(client, {key: grade["state"] for key, grade in whole.items()})
    assert again == whole


def _state(client: TestClient, **params: Any) -> dict[str, Any]:
    x, y = np.eye(3)[[0, 1, 2, 0]], np.array([0, 1, 2, 1])
    found = grades(
        client,
        {"a": {"metric": "accuracy", **params}},
        input=x,
        target=y,
        task="multiclass",
        input_kind="probabilities",
    )
    state: dict[str, Any] = found["a"]["state"]
    return state


def test_states_of_other_settings_are_refused(client: TestClient) -> None:
    one, two = _state(client), _state(client, top_k=2)
    body = problem(client.post("/v1/grades/finalize", json={"states": {"a": [one, two]}}), 422)
    assert body["errors"] == [
        {
            "loc": ["body", "states", "a", 1, "settings", "top_k"],
            "msg": "settings differ: top_k is 2 here and 1 in the first state; only states"
            " computed alike merge",
            "type": "state_mismatch",
        }
    ]


@pytest.mark.parametrize(
    ("change", "loc", "msg", "kind"),
    [
        (
            lambda s: s | {"metric": "accuracyy"},
            ["metric"],
            (
                "unknown metric 'accuracyy'; known: accuracy, confusion_matrix, calibration_error,"
                " brier_score, log_loss, auroc, average_precision, regression"
            ),
            "unknown_metric",
        ),
        (
            lambda s: s | {"arrays": {"tp": [1, 1, 1]}},
            ["arrays"],
            "a accuracy state's arrays are: tp, fp, fn, tn",
            "state_arrays",
        ),
        (
            lambda s: s | {"arrays": s["arrays"] | {"tp": [1, 1]}},
            ["arrays", "tp"],
            "arrays.tp has shape (2,); its settings make it (3,)",
            "state_shape",
        ),
        (
            lambda s: s | {"arrays": s["arrays"] | {"tp": [1, "x", 1]}},
            ["arrays", "tp"],
            "arrays.tp is not an array of numbers",
            "state_array",
        ),
        (
            lambda s: s | {"settings": s["settings"] | {"top_k": 0}},
            ["settings", "top_k"],
            "settings.top_k: Input should be greater than or equal to 1",
            "greater_than_equal",
        ),
        (
            lambda s: s | {"settings": s["settings"] | {"num_classes": None}},
            ["settings", "num_classes"],
            "num_classes is required in a state's settings",
            "missing",
        ),
        (
            lambda s: s | {"arrays": s["arrays"] | {"tp": [1, -5, 1]}},
            ["arrays.tp", 1],
            "arrays.tp[1] = -5.0 is negative; it is a count or a sum of squares, >= 0",
            "state_negative",
        ),
        (  # found by schemathesis: a 500 once
            lambda s: s | {"metric": {}},
            ["metric"],
            "metric must be a metric's name, a string",
            "string_type",
        ),
        (
            lambda s: {"metric": "accuracy"},
            [],
            "a state is an object of metric, settings and arrays",
            "state",
        ),
    ],
)
def test_a_bad_state_is_refused_naming_where(client: TestClient, change, loc, msg, kind) -> None:
    state = change(_state(client))
    body = problem(
        client.post("/v1/grades/finalize", json={"states": {"a": [_state(client), state]}}), 422
    )
    assert body["errors"] == [{"loc": ["body", "states", "a", 1, *loc], "msg": msg, "type": kind}]


def test_a_finalize_body_that_is_not_states(client: TestClient) -> None:
    assert problem(client.post("/v1/grades/finalize", content=b"{", headers=JSON), 400)[
        "detail"
    ].startswith("the body is not JSON")
    body = problem(client.post("/v1/grades/finalize", json={"states": {}}), 422)
    assert body["detail"] == "states is empty; it needs a key and its states"
    body = problem(client.post("/v1/grades/finalize", json={"states": {"a": []}}), 422)
    assert body["detail"] == "states.a is empty"


@pytest.mark.parametrize(
    ("task", "input", "target", "kind"),
    [
        ("binary", [0.3, -1.2, 2.0, 0.1], [1, 0, 1, 1], "logits"),
        ("multilabel", [[0.3, -1.2], [2.0, 0.1]], [[1, 0], [1, 1]], "logits"),
        ("regression", [1, 2, 3, 5], [1, 2, 4, 4], "predictions"),  # integers: counts, ratings
    ],
)
def test_every_task_s_state_finalises_to_its_own_answer(
    client: TestClient, task: str, input: list, target: list, kind: str
) -> None:
    """A binary state once came back as a 422 (num_classes 1), integer regression as a 500."""
    metrics = ["regression"] if task == "regression" else ["accuracy", "confusion_matrix", "auroc"]
    if task == "binary":
        metrics += ["calibration_error", "brier_score", "log_loss", "average_precision"]
    whole = grades(client, metrics, input=input, target=target, task=task, input_kind=kind)
    again = finalize(
        client, {key: [grade["state"], grade["state"]] for key, grade in whole.items()}
    )
    for key, grade in whole.items():
        assert again[key]["values"] == grade["values"], key
    if task == "regression":
        floats = [float(v) for v in input], [float(v) for v in target]
        as_floats = grades(
            client, metrics, input=floats[0], target=floats[1], task=task, input_kind=kind
        )
        assert as_floats["regression"]["values"] == whole["regression"]["values"]
