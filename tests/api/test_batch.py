"""/v1/batch: each item answers what POST /v1/losses/{loss} would; the request fails as a
whole only when it is not a batch."""

from typing import Any

import pytest
from fastapi.testclient import TestClient

from service.config import Settings
from tests.conftest import make_client, problem

ITEMS: list[dict[str, Any]] = [
    {"loss": "cross_entropy", "input": [[1, 2, 3]], "target": [2]},
    {
        "loss": "binary_cross_entropy_with_logits",
        "input": [1.5],
        "target": [1.0],
        "pos_weight": [3.0],
        "grad": True,
    },
    {"loss": "nll_loss", "input": [[-1.0, -0.5]], "target": [3]},
    {
        "loss": "mse_loss",
        "input": [[1.0, 2.0]],
        "target": [[0.5, 4.0]],
        "dtype": "float64",
        "reduction": "none",
    },
    {"loss": "hinge", "input": [1.0]},
    {"input": [1.0]},
    {"loss": 3, "input": [1.0]},
    [1, 2],
    {"loss": "kl_div", "input": [[-1.0, -0.5]], "target": [[0.5, 0.5]], "pos_wieght": [1]},
]


def alone(client: TestClient, item: Any) -> dict[str, Any]:
    """What the item gets from its own endpoint, in a batch result's form."""
    if not isinstance(item, dict) or not isinstance(item.get("loss"), str):
        return {}
    fields = {k: v for k, v in item.items() if k != "loss"}
    response = client.post(f"/v1/losses/{item['loss']}", json=fields)
    if response.status_code == 200:
        return {"ok": True} | response.json()
    return {"ok": False, "error": response.json()}


def test_each_item_gets_what_it_would_get_alone(client: TestClient) -> None:
    response = client.post("/v1/batch", json={"items": ITEMS})
    assert response.status_code == 200
    results = response.json()["results"]
    assert len(results) == len(ITEMS)
    assert [r["ok"] for r in results] == [
        True,
        True,
        False,
        True,
        False,
        False,
        False,
        False,
        False,
    ]
    for item, result in zip(ITEMS, results, strict=True):
        if expected := alone(client, item):
            assert result == expected
    assert results[5]["error"]["detail"] == (
        "loss is required: the name of the loss to compute (or grade, a metric's name)"
    )
    assert results[6]["error"]["detail"] == "loss must be the name of a loss, a string"
    assert results[7]["error"]["detail"] == "the body must be a JSON object"
    assert results[4]["error"]["status"] == 404


def test_items_past_the_small_body_size_are_read_as_alone(client: TestClient) -> None:
    """Items over 8 KiB have their tensors cut out of the item's text, not msgspec's scan."""
    logits = [[float(i % 7) / 3, -float(i % 5) / 7, 0.125] for i in range(600)]
    sound = {"loss": "cross_entropy", "input": logits, "target": [1] * 600, "grad": True}
    broken = {"loss": "cross_entropy", "input": [*logits[:599], [0.5, None, 1.0]]}
    broken["target"] = [0] * 600
    response = client.post("/v1/batch", json={"items": [sound, broken]})
    assert response.status_code == 200
    results = response.json()["results"]
    assert results == [alone(client, sound), alone(client, broken)]
    assert results[1]["error"]["errors"][0]["loc"] == ["body", "input", 599, 1]


@pytest.mark.parametrize(
    ("content", "status", "detail"),
    [
        (b'{"items": [', 400, "the body is not valid JSON: Input data was truncated"),
        (b"[1]", 422, "the body must be a JSON object"),
        (b"{}", 422, "items is required: a list of loss requests"),
        (b'{"items": {}}', 422, "items must be a list of loss requests"),
        (b'{"items": []}', 422, "items is empty; a batch needs at least one"),
        (b'{"items": [{}], "mode": 1}', 422, "unknown field 'mode'; a batch takes: items"),
    ],
)
def test_a_request_that_is_not_a_batch(
    client: TestClient, content: bytes, status: int, detail: str
) -> None:
    response = client.post(
        "/v1/batch", content=content, headers={"content-type": "application/json"}
    )
    assert problem(response, status)["detail"] == detail


def test_the_item_limit_and_one_element_budget_for_all_items() -> None:
    item = {"loss": "mse_loss", "input": [1.0] * 10, "target": [1.0] * 10}
    with make_client(Settings(max_batch_items=3, max_elements=50)) as small:
        assert small.get("/v1/info").json()["limits"]["max_batch_items"] == 3
        too_many = small.post("/v1/batch", json={"items": [item] * 4})
        assert problem(too_many, 413)["detail"] == (
            "the batch holds 4 items, more than max_batch_items (3)"
        )
        assert small.post("/v1/batch", json={"items": [item] * 2}).status_code == 200
        too_large = small.post("/v1/batch", json={"items": [item] * 3})  # 60 elements > 50
        assert problem(too_large, 413)["detail"] == (
            "the tensors hold more than max_elements (50) elements"
        )
