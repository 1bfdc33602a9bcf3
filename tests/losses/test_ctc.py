"""ctc_loss against torch in float64: padded and concatenated targets, impossible alignments."""

from typing import Any

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.losses.parity import check
from tests.losses.strategies import OPTIONS, tensor
from tests.reference import reference

EXAMPLES = settings(max_examples=80, deadline=None)


@st.composite
def ctc_case(draw: st.DrawFn) -> tuple[dict, dict]:
    """(T, N, C) or (T, C) log-probabilities; padded or concatenated labels other than blank."""
    steps, classes = draw(st.integers(1, 8)), draw(st.integers(2, 5))
    batch = draw(st.sampled_from([(), (1,), (2,), (3,)]))
    logits = draw(tensor((steps, *batch, classes), -4, 4))
    log_probs = torch.from_numpy(logits).log_softmax(-1).numpy()
    blank = draw(st.integers(0, classes - 1))
    labels = st.integers(0, classes - 1).filter(lambda c: c != blank)
    size = int(np.prod(batch))
    target_lengths = draw(st.lists(st.integers(0, 5), min_size=size, max_size=size))
    input_lengths = draw(st.lists(st.integers(1, steps), min_size=size, max_size=size))
    rows = [draw(st.lists(labels, min_size=n, max_size=n)) for n in target_lengths]
    width = max(target_lengths, default=0) + draw(st.integers(0, 2))
    padded = np.array([row + [draw(labels)] * (width - len(row)) for row in rows], np.int64)
    if not batch or draw(st.booleans()):
        targets = np.array([label for row in rows for label in row], dtype=np.int64)
    else:
        targets = padded.reshape(*batch, width)
    tensors = {
        "log_probs": log_probs,
        "targets": targets,
        "input_lengths": np.array(input_lengths, np.int64).reshape(batch),
        "target_lengths": np.array(target_lengths, np.int64).reshape(batch),
    }
    return tensors, {"blank": blank, "zero_infinity": draw(st.booleans())}


@EXAMPLES
@given(case=ctc_case(), options=OPTIONS)
def test_ctc_loss(via: Any, case: Any, options: dict) -> None:
    check(via, "ctc_loss", F.ctc_loss, *case, options)


IMPOSSIBLE = {
    "log_probs": np.log(np.full((2, 1, 3), 1 / 3)).tolist(),
    "targets": [[1, 2, 1]],  # three labels cannot fit in two time steps
    "input_lengths": [2],
    "target_lengths": [3],
}


def test_an_impossible_alignment_is_null_with_a_warning(client: Any) -> None:
    body = client.post("/v1/losses/ctc_loss", json=IMPOSSIBLE | {"reduction": "none"}).json()
    expected, _ = reference(F.ctc_loss, IMPOSSIBLE, reduction="none")
    assert np.isinf(expected).all()
    assert body["loss"] == [None]
    assert body["warnings"] == [
        "loss: 1 of 1 values are not finite (NaN or infinity), written as null"
    ]


@pytest.mark.parametrize("reduction", ["none", "mean", "sum"])
def test_zero_infinity_zeroes_an_impossible_alignment(client: Any, reduction: str) -> None:
    body = client.post(
        "/v1/losses/ctc_loss",
        json=IMPOSSIBLE | {"zero_infinity": True, "reduction": reduction, "grad": True},
    ).json()
    assert np.asarray(body["loss"]).tolist() == np.zeros(body["shape"]).tolist()
    assert np.asarray(body["grad"]["log_probs"]).tolist() == np.zeros((2, 1, 3)).tolist()
    assert "warnings" not in body


def test_the_means_of_two_halves_join_by_their_divisors(client: Any) -> None:
    """ "mean" averages loss / target_length over the batch, so the batch is the divisor."""
    rng = np.random.default_rng(0)
    log_probs = torch.from_numpy(rng.normal(size=(6, 4, 3))).log_softmax(-1).numpy()
    targets = np.array([[1, 2], [2, 2], [1, 1], [2, 1]])
    lengths = {"input_lengths": [6, 5, 6, 4], "target_lengths": [2, 1, 2, 1]}

    def mean(rows: slice) -> tuple[float, float]:
        body = {
            "log_probs": log_probs[:, rows].tolist(),
            "targets": targets[rows].tolist(),
            **{k: v[rows] for k, v in lengths.items()},
            "dtype": "float64",
        }
        answer = client.post("/v1/losses/ctc_loss", json=body).json()
        return answer["loss"], answer["divisor"]

    (whole, n), (first, n1), (second, n2) = mean(slice(0, 4)), mean(slice(0, 1)), mean(slice(1, 4))
    assert (n, n1, n2) == (4, 1, 3)
    assert whole == pytest.approx((first * n1 + second * n2) / (n1 + n2), rel=1e-12)
