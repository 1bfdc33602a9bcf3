"""Client and AsyncClient against a real server: binary and JSON, whole and split calls,
compared with torch and cleanlab on the whole arrays."""

import asyncio
from typing import Any

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from cleanlab.rank import get_label_quality_scores

from loss_service_client import AsyncClient, Client, LossResult, LossServiceError

RNG = np.random.default_rng(7)
LOGITS = RNG.normal(size=(1000, 10)).astype(np.float64)
LABELS = RNG.integers(0, 10, 1000)
WEIGHT = RNG.uniform(0.2, 2.0, 10)


def reference(reduction: str, **kwargs: Any) -> tuple[np.ndarray, np.ndarray]:
    x = torch.from_numpy(LOGITS).requires_grad_()
    loss = F.cross_entropy(x, torch.from_numpy(LABELS), reduction=reduction, **kwargs)
    loss.sum().backward()
    assert x.grad is not None
    return loss.detach().numpy(), x.grad.numpy()


def check(result: LossResult, reduction: str, **kwargs: Any) -> None:
    loss, grad = reference(reduction, **kwargs)
    assert result.loss.shape == loss.shape and result.reduction == reduction
    np.testing.assert_allclose(result.loss, loss, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(result.grad["input"], grad, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("binary", [True, False], ids=["binary", "json"])
@pytest.mark.parametrize("reduction", ["none", "sum", "mean"])
def test_a_split_call_equals_one_request(small: str, binary: bool, reduction: str) -> None:
    with Client(small, binary=binary, progress=False) as client:
        result = client.loss(
            "cross_entropy",
            input=LOGITS,
            target=LABELS,
            reduction=reduction,
            grad=True,
            dtype="float64",
        )
    check(result, reduction)


def test_a_weighted_mean_with_ignored_targets_joins_by_the_divisors(small: str) -> None:
    target = LABELS.copy()
    target[::7] = -100
    with Client(small, progress=False) as client:
        result = client.loss(
            "cross_entropy",
            input=LOGITS,
            target=target,
            weight=WEIGHT,
            grad=True,
            dtype="float64",
            label_smoothing=0.1,
        )
    x = torch.from_numpy(LOGITS).requires_grad_()
    kwargs = {"weight": torch.from_numpy(WEIGHT), "label_smoothing": 0.1}
    loss = F.cross_entropy(x, torch.from_numpy(target), **kwargs)
    loss.backward()
    assert x.grad is not None
    np.testing.assert_allclose(result.loss, loss.item(), rtol=1e-10)
    np.testing.assert_allclose(result.grad["input"], x.grad.numpy(), rtol=1e-9, atol=1e-14)
    assert result.divisor == pytest.approx(WEIGHT[target[target != -100]].sum())


def test_the_async_client_splits_alike(small: str) -> None:
    async def scenario() -> list[LossResult]:
        async with AsyncClient(small, progress=False) as client:
            calls = [
                client.loss(
                    "cross_entropy",
                    input=LOGITS,
                    target=LABELS,
                    reduction=r,
                    grad=True,
                    dtype="float64",
                )
                for r in ("none", "mean")
            ]
            return list(await asyncio.gather(*calls))

    none, mean = asyncio.run(scenario())
    check(none, "none")
    check(mean, "mean")


def test_label_quality_of_a_split_call_matches_cleanlab(small: str) -> None:
    with Client(small, progress=False) as client:
        found = client.label_quality(input=LOGITS, target=LABELS, dtype="float64")
    probabilities = torch.softmax(torch.from_numpy(LOGITS), 1).numpy()
    for method in ("self_confidence", "normalized_margin", "confidence_weighted_entropy"):
        expected = get_label_quality_scores(LABELS, probabilities, method=method)
        np.testing.assert_allclose(found[method], expected, atol=1e-6)
    np.testing.assert_array_equal(found["predicted"], LOGITS.argmax(1))


def test_activations_split_unless_they_normalise_over_the_batch(small: str) -> None:
    with Client(small, progress=False) as client:
        rows = client.activation("softmax", input=LOGITS, dim=1, dtype="float64")
        np.testing.assert_allclose(rows, torch.softmax(torch.from_numpy(LOGITS), 1), rtol=1e-12)
        small_batch = LOGITS[:50]
        columns = client.activation("log_softmax", input=small_batch, dim=0, dtype="float64")
        expected = torch.log_softmax(torch.from_numpy(small_batch), 0)
        np.testing.assert_allclose(columns, expected, rtol=1e-12)


def test_torch_tensors_lists_and_numbers_are_inputs(url: str) -> None:
    with Client(url) as client:
        from_torch = client.loss(
            "mse_loss", input=torch.ones(3, requires_grad=True), target=torch.zeros(3)
        )
        from_lists = client.loss("mse_loss", input=[1.0, 1.0, 1.0], target=[0, 0, 0])
        from_numbers = client.loss("mse_loss", input=1.0, target=0.0, reduction="sum")
    assert from_torch.loss == from_lists.loss == from_numbers.loss == 1.0
    assert from_torch.loss.shape == ()
    assert (from_torch.dtype, from_torch.device) == ("float32", "cpu")


@pytest.mark.parametrize("binary", [True, False], ids=["binary", "json"])
def test_a_refusal_raises_with_the_status_and_the_problem(url: str, binary: bool) -> None:
    with Client(url, binary=binary) as client, pytest.raises(LossServiceError) as raised:
        client.loss("cross_entropy", input=[[1.0, 2.0]], target=[5])
    error = raised.value
    assert error.status == 422
    assert (
        str(error) == "target[0] = 5 is not a class index in [0, 2) and is not ignore_index (-100)"
    )
    assert error.problem["detail"] == str(error)


def test_an_unknown_loss_is_a_404(url: str) -> None:
    with Client(url) as client, pytest.raises(LossServiceError) as raised:
        client.loss("hinge", input=[1.0])
    assert raised.value.status == 404
    assert str(raised.value).startswith("unknown loss 'hinge'; known: cross_entropy")


def test_the_catalogue(url: str) -> None:
    with Client(url) as client:
        names = [entry["name"] for entry in client.losses()]
    assert names[0] == "cross_entropy" and "ctc_loss" in names


def test_a_progress_bar_when_a_call_takes_several_requests(
    small: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with Client(small) as client:
        client.loss("cross_entropy", input=LOGITS, target=LABELS)
        assert "request" in capsys.readouterr().err
        client.loss("cross_entropy", input=LOGITS, target=LABELS, progress=False)
        client.loss("cross_entropy", input=LOGITS[:2], target=LABELS[:2])
        assert capsys.readouterr().err == ""
