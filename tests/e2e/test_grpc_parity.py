"""Parity over gRPC: one case per function through tritonclient.grpc, sync and aio, against a
real server, compared with torch in float64 (and cleanlab for label quality).

The hypothesis runs are over /v1 and /v2 REST (tests/losses); this table shows that every
function's tensors and parameters of every kind cross gRPC intact.
"""

import asyncio
import json
from collections.abc import Callable
from typing import Any

import httpx2
import numpy as np
import pytest
import torch
import torch.nn.functional as F
import tritonclient.grpc as triton_grpc
import tritonclient.grpc.aio as triton_grpc_aio
from tritonclient.utils import InferenceServerException

from service.kinds import MODELS
from tests.e2e.conftest import GRPC
from tests.losses.parity import check
from tests.losses.test_embeddings import with_distance
from tests.losses.test_focal import api_focal_loss, torchvision_sigmoid_focal_loss
from tests.transports import DATATYPE, TritonGrpc

RNG = np.random.default_rng(22)
N, C, D = 8, 5, 4


def normal(*shape: int) -> np.ndarray:
    return RNG.normal(size=shape)


def uniform(*shape: int) -> np.ndarray:
    return RNG.uniform(0.05, 0.95, size=shape)


def classes(*shape: int) -> np.ndarray:
    return RNG.integers(0, C, size=shape)


def signs(*shape: int) -> np.ndarray:
    return RNG.choice([-1.0, 1.0], size=shape)


def probabilities(*shape: int) -> np.ndarray:
    return np.asarray(torch.softmax(torch.from_numpy(normal(*shape)), -1))


def multilabel_targets() -> np.ndarray:
    """Class indices, each row ended by -1 (multilabel_margin_loss's layout)."""
    target = np.full((N, C), -1)
    target[:, 0], target[:, 1] = classes(N), (classes(N) + 1) % C
    return target


LOSSES: list[tuple[str, Callable[..., Any], dict[str, Any], dict[str, Any]]] = [
    (
        "cross_entropy",
        F.cross_entropy,
        {"input": normal(N, C), "target": classes(N), "weight": uniform(C)},
        {"label_smoothing": 0.1, "ignore_index": 2},
    ),
    (
        "nll_loss",
        F.nll_loss,
        {"input": np.log(probabilities(N, C)), "target": classes(N)},
        {"ignore_index": 1},
    ),
    (
        "binary_cross_entropy",
        F.binary_cross_entropy,
        {"input": uniform(N), "target": uniform(N), "weight": uniform(N)},
        {},
    ),
    (
        "binary_cross_entropy_with_logits",
        F.binary_cross_entropy_with_logits,
        {"input": normal(N, C), "target": uniform(N, C), "pos_weight": uniform(C)},
        {},
    ),
    (
        "sigmoid_focal_loss",
        torchvision_sigmoid_focal_loss,
        {"input": normal(N), "target": uniform(N)},
        {"alpha": 0.3, "gamma": 1.5},
    ),
    (
        "focal_loss",
        api_focal_loss,
        {"input": normal(N, C), "target": classes(N), "alpha": uniform(C)},
        {"gamma": 2.0},
    ),
    ("l1_loss", F.l1_loss, {"input": normal(N, D), "target": normal(N, D)}, {}),
    ("mse_loss", F.mse_loss, {"input": normal(N, D), "target": normal(N, D)}, {}),
    ("smooth_l1_loss", F.smooth_l1_loss, {"input": normal(N), "target": normal(N)}, {"beta": 0.5}),
    ("huber_loss", F.huber_loss, {"input": normal(N), "target": normal(N)}, {"delta": 0.7}),
    (
        "kl_div",
        F.kl_div,
        {"input": np.log(probabilities(N, C)), "target": probabilities(N, C)},
        {"log_target": False},
    ),
    (
        "poisson_nll_loss",
        F.poisson_nll_loss,
        {"input": normal(N), "target": RNG.poisson(2.0, N).astype(float)},
        {"full": True, "eps": 1e-6},
    ),
    (
        "gaussian_nll_loss",
        F.gaussian_nll_loss,
        {"input": normal(N, D), "target": normal(N, D), "var": uniform(N, D)},
        {"full": True},
    ),
    (
        "margin_ranking_loss",
        F.margin_ranking_loss,
        {"input1": normal(N), "input2": normal(N), "target": signs(N)},
        {"margin": 0.2},
    ),
    (
        "hinge_embedding_loss",
        F.hinge_embedding_loss,
        {"input": normal(N), "target": signs(N)},
        {"margin": 1.5},
    ),
    ("soft_margin_loss", F.soft_margin_loss, {"input": normal(N), "target": signs(N)}, {}),
    (
        "multilabel_soft_margin_loss",
        F.multilabel_soft_margin_loss,
        {"input": normal(N, C), "target": RNG.integers(0, 2, (N, C)).astype(float)},
        {},
    ),
    (
        "multilabel_margin_loss",
        F.multilabel_margin_loss,
        {"input": normal(N, C), "target": multilabel_targets()},
        {},
    ),
    (
        "multi_margin_loss",
        F.multi_margin_loss,
        {"input": normal(N, C), "target": classes(N)},
        {"p": 2, "margin": 0.5},
    ),
    (
        "cosine_embedding_loss",
        F.cosine_embedding_loss,
        {"input1": normal(N, D), "input2": normal(N, D), "target": signs(N)},
        {"margin": 0.1},
    ),
    (
        "triplet_margin_loss",
        F.triplet_margin_loss,
        {"anchor": normal(N, D), "positive": normal(N, D), "negative": normal(N, D)},
        {"margin": 0.5, "swap": True},
    ),
    (
        "triplet_margin_with_distance_loss",
        with_distance,
        {"anchor": normal(N, D), "positive": normal(N, D), "negative": normal(N, D)},
        {"distance": "cosine"},
    ),
    (
        "ctc_loss",
        F.ctc_loss,
        {
            "log_probs": np.log(probabilities(12, 2, C)),
            "targets": RNG.integers(1, C, (2, 4)),
            "input_lengths": np.array([12, 10]),
            "target_lengths": np.array([4, 3]),
        },
        {"blank": 0},
    ),
]
ACTIVATIONS: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
    "softmax": lambda x: torch.softmax(x, 1),
    "log_softmax": lambda x: torch.log_softmax(x, 1),
    "sigmoid": torch.sigmoid,
    "logsigmoid": F.logsigmoid,
}


GRADE_DATA = {
    "multiclass": {"input": normal(64, C), "target": classes(64)},
    "regression": {"input": normal(64), "target": normal(64)},
}
GRADES: dict[str, tuple[str, dict[str, Any]]] = {
    "accuracy": ("multiclass", {"top_k": 2, "average": "macro"}),
    "confusion_matrix": ("multiclass", {"average": "weighted"}),
    "calibration_error": ("multiclass", {"n_bins": 10, "norm": "max"}),
    "brier_score": ("multiclass", {}),
    "log_loss": ("multiclass", {}),
    "auroc": ("multiclass", {"thresholds": "0.1,0.5,0.9"}),
    "average_precision": ("multiclass", {"thresholds": 20}),
    "regression": ("regression", {}),
    "grades": ("multiclass", {"metrics": '{"top": {"metric": "accuracy", "top_k": 3}}'}),
}


def test_the_table_has_every_model() -> None:
    tables = {name for name, *_ in LOSSES} | set(ACTIVATIONS) | {"label_quality"} | set(GRADES)
    assert tables == set(MODELS)


@pytest.mark.parametrize("name", list(GRADES))
def test_every_grade_answers_as_v1(server: str, name: str) -> None:
    """Every value and state array over gRPC equals the /v1 answer (which tests/grades holds
    against torchmetrics and scikit-learn), with the states' settings in the parameters."""
    task, params = GRADES[name]
    data = GRADE_DATA[task]
    kind = {"task": task, "input_kind": "predictions" if task == "regression" else "logits"}
    sent = kind | params | {"dtype": "float64"}
    with triton_grpc.InferenceServerClient(GRPC[server]) as client:
        result = client.infer(
            name, [grpc_input(n, a) for n, a in data.items()], parameters=sent
        ).get_response(as_json=True)
        answer = client.infer(name, [grpc_input(n, a) for n, a in data.items()], parameters=sent)
    body = {n: a.tolist() for n, a in data.items()} | sent
    if name == "grades":
        body["metrics"] = json.loads(params["metrics"])
    v1 = httpx2.post(f"{server}/v1/grades{'' if name == 'grades' else '/' + name}", json=body)
    assert v1.status_code == 200, v1.text
    grades = v1.json()["grades"] if name == "grades" else {"": v1.json()}
    for key, grade in grades.items():
        prefix = f"{key}." if key else ""
        for value, expected in grade["values"].items():
            np.testing.assert_array_equal(answer.as_numpy(prefix + value), expected)
        for array, expected in grade["state"]["arrays"].items():
            np.testing.assert_array_equal(answer.as_numpy(f"{prefix}state.{array}"), expected)
    settings = json.loads(result["parameters"]["grades"]["string_param"])
    assert {k: s["settings"] for k, s in settings.items()} == {
        key or name: g["state"]["settings"] for key, g in grades.items()
    }


@pytest.fixture(scope="module", params=["sync", "aio"])
def grpc_server(server: str, request: pytest.FixtureRequest) -> TritonGrpc:
    return TritonGrpc(GRPC[server], aio=request.param == "aio")


@pytest.mark.parametrize(("name", "fn", "tensors", "params"), LOSSES, ids=[c[0] for c in LOSSES])
@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_every_loss(
    grpc_server: TritonGrpc,
    name: str,
    fn: Callable[..., Any],
    tensors: dict[str, np.ndarray],
    params: dict[str, Any],
    dtype: str,
) -> None:
    reduction = "sum" if name != "ctc_loss" else "mean"
    options = {"dtype": dtype, "reduction": reduction, "grad": True}
    check(grpc_server, name, fn, dict(tensors), params, options)


def grpc_input(name: str, array: np.ndarray) -> triton_grpc.InferInput:
    found = triton_grpc.InferInput(name, list(array.shape), DATATYPE[array.dtype])
    found.set_data_from_numpy(array)
    return found


@pytest.mark.parametrize("name", list(ACTIVATIONS))
def test_every_activation(server: str, name: str) -> None:
    """Through the aio client (the losses go through both, label quality through sync)."""
    x = normal(N, C)

    async def infer() -> np.ndarray:
        async with triton_grpc_aio.InferenceServerClient(GRPC[server]) as client:
            parameters = {"dtype": "float64"} | ({"dim": 1} if "softmax" in name else {})
            result = await client.infer(name, [grpc_input("input", x)], parameters=parameters)
        output: np.ndarray = result.as_numpy("output")
        return output

    np.testing.assert_allclose(
        asyncio.run(infer()), ACTIVATIONS[name](torch.from_numpy(x)).numpy(), rtol=1e-12
    )


def test_label_quality_against_cleanlab(server: str) -> None:
    from cleanlab.rank import get_label_quality_scores

    x, target = normal(64, C), classes(64)
    scores = ["self_confidence", "normalized_margin", "confidence_weighted_entropy"]
    with triton_grpc.InferenceServerClient(GRPC[server]) as client:
        result = client.infer(
            "label_quality",
            [grpc_input("input", x), grpc_input("target", target)],
            parameters={"dtype": "float64", "scores": ",".join(scores)},
        )
    probabilities = torch.softmax(torch.from_numpy(x), 1).numpy()
    for method in scores:
        expected = get_label_quality_scores(target, probabilities, method=method)
        np.testing.assert_allclose(result.as_numpy(method), expected, rtol=1e-9, atol=1e-12)
    np.testing.assert_array_equal(result.as_numpy("predicted"), x.argmax(1))


@pytest.mark.parametrize(
    ("model", "parameters", "message"),
    [
        (
            "grades",
            {"metrics": '{"a": {"metric": "acuracy"}}'},
            "unknown metric 'acuracy'; known: accuracy, confusion_matrix, calibration_error,"
            " brier_score, log_loss, auroc, average_precision, regression",
        ),
        (
            "brier_score",
            {"input_kind": "probabilities"},
            "input[0] sums to 25; each row of probabilities must sum to 1 (within 0.001): send"
            " logits with input_kind logits",
        ),
    ],
)
def test_a_grade_refused_over_grpc_with_a_large_message(
    server: str, model: str, parameters: dict[str, Any], message: str
) -> None:
    """tritonclient.grpc on a refusal path, with 4 MB of scores: INVALID_ARGUMENT in /v1's
    words, naming the field and the rule."""
    x, target = np.full((20_000, 50), 0.5, np.float32), RNG.integers(0, 50, 20_000)
    sent = {"task": "multiclass", "input_kind": "logits"} | parameters
    inputs = [grpc_input("input", x), grpc_input("target", target)]
    client = triton_grpc.InferenceServerClient(GRPC[server])
    with client, pytest.raises(InferenceServerException) as refused:
        client.infer(model, inputs, parameters=sent)
    assert refused.value.status() == "StatusCode.INVALID_ARGUMENT"
    assert refused.value.message() == message
