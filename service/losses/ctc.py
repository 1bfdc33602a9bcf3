"""Connectionist temporal classification: ctc_loss."""

import numpy as np
import torch.nn.functional as F
from pydantic import Field

from service import checks
from service.errors import Invalid
from service.spec import (
    Arrays,
    Cost,
    LossOptions,
    LossSpec,
    Params,
    TensorSpec,
    itemsize,
    linear,
)


class CTCParams(Params):
    blank: int = Field(default=0, ge=0)
    """The blank label's class index."""
    zero_infinity: bool = False
    """Replace the infinite loss of an impossible alignment (and its gradient) by zero."""


def _check_ctc(t: Arrays, p: CTCParams, o: LossOptions) -> None:
    log_probs, targets = t["log_probs"], t["targets"]
    input_lengths, target_lengths = t["input_lengths"], t["target_lengths"]
    steps, classes = log_probs.shape[0], log_probs.shape[-1]
    batch = log_probs.shape[1:-1]  # (N) for (T, N, C), () for (T, C)
    for name, lengths in (("input_lengths", input_lengths), ("target_lengths", target_lengths)):
        checks.same_shape(name, lengths, "log_probs' batch (N)", batch)
        checks.integers(name, lengths, "length")
        checks.at_least_zero(name, lengths, "a length")
    checks.reject_first(
        "input_lengths",
        input_lengths,
        input_lengths > steps,
        f"is longer than log_probs' {steps} time steps",
        "length_out_of_range",
    )
    if p.blank >= classes:
        raise Invalid.at(
            ("blank",),
            f"blank = {p.blank} is not a class index in [0, {classes})",
            "class_index_out_of_range",
        )
    checks.integers("targets", targets, "label")
    within = _labelled(targets, target_lengths, batch)
    checks.reject_first(
        "targets",
        targets,
        within & ((targets < 0) | (targets >= classes) | (targets == p.blank)),
        f"is not a label: a class index in [0, {classes}) other than blank ({p.blank})",
        "label_out_of_range",
    )


def _labelled(targets: np.ndarray, lengths: np.ndarray, batch: tuple[int, ...]) -> np.ndarray:
    """Which entries of targets are labels: all of concatenated (sum(target_lengths)) ones,
    which unbatched (S) ones are too, or the first target_lengths[i] of padded row i."""
    if targets.ndim == 1:
        if int(lengths.sum()) != targets.shape[0]:
            raise Invalid.at(
                ("targets",),
                f"targets holds {targets.shape[0]} labels but target_lengths sum to"
                f" {int(lengths.sum())}",
                "shape_mismatch",
            )
        return np.ones(targets.shape, dtype=bool)
    expected = (*batch, targets.shape[-1])
    checks.same_shape("targets", targets, "padded targets for log_probs (N, S)", expected)
    checks.reject_first(
        "target_lengths",
        lengths,
        lengths > targets.shape[-1],
        f"is longer than targets' {targets.shape[-1]} columns",
        "length_out_of_range",
    )
    return np.arange(targets.shape[-1]) < lengths[:, None]


NS_PER_CELL = 20.0
"""CTC's forward per cell of its alignment lattice, T x N x (2 S + 1) (measured on one core);
the backward pass adds GRAD_FACTOR - 1 times it."""
GRAD_FACTOR = 2.5


def _ctc_cost(t: Arrays, p: CTCParams, o: LossOptions) -> Cost:
    """The lattice: T x N x (2 S + 1) cells, S the longest target; PyTorch keeps a float of
    the computation's dtype per cell (alpha), and with grad a second (beta)."""
    log_probs, lengths = t["log_probs"], t["target_lengths"]
    batch = log_probs.shape[1] if log_probs.ndim == 3 else 1
    longest = int(lengths.max()) if lengths.size else 0
    cells = log_probs.shape[0] * batch * (2 * longest + 1)
    factor = GRAD_FACTOR if o.grad else 1.0
    inputs = linear(t, p, o)
    seconds = cells * NS_PER_CELL * factor * 1e-9 + inputs.seconds
    return Cost(seconds, cells * itemsize(o) * (2 if o.grad else 1) + inputs.bytes)


LOSSES = (
    LossSpec(
        name="ctc_loss",
        summary="Connectionist temporal classification: the negative log likelihood of label"
        " sequences under per-step log-probabilities, summed over alignments.",
        reference="torch.nn.functional.ctc_loss",
        tensors=(
            TensorSpec(
                "log_probs",
                "log-probabilities",
                "(T, N, C) or (T, C)",
                grad=True,
                ranks=range(2, 4),
                dims=3,
                batch=None,  # concatenated targets cannot be cut by the batch: never split
            ),
            TensorSpec(
                "targets",
                "labels",
                "padded (N, S), or concatenated (sum(target_lengths)); (S) for (T, C)",
                dtype="int",
                ranks=range(1, 3),
                may_be_empty=True,
                dims=2,
                batch=None,
            ),
            TensorSpec(
                "input_lengths", "lengths", "(N) or ()", dtype="int", ranks=range(2), batch=None
            ),
            TensorSpec(
                "target_lengths", "lengths", "(N) or ()", dtype="int", ranks=range(2), batch=None
            ),
        ),
        params=CTCParams,
        check=_check_ctc,
        call=F.ctc_loss,
        # "mean" averages loss / target_length over the batch: the batch is the divisor.
        divisor=lambda t, p, o: float(t["log_probs"].shape[1] if t["log_probs"].ndim == 3 else 1),
        cost=_ctc_cost,
    ),
)
