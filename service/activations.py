"""Activations that turn logits into probabilities: softmax, log_softmax, sigmoid, logsigmoid.

Declared like losses (service.spec.Spec), without a reduction or a gradient.
"""

import torch
import torch.nn.functional as F

from service.errors import Invalid
from service.spec import Arrays, Options, Params, Spec, TensorSpec, registry

INPUT = (TensorSpec("input", "logits", "any", may_be_empty=True, dims=2),)


class Dim(Params):
    dim: int
    """The dimension to normalise over; negative counts from the end. Required, as PyTorch
    deprecated choosing it implicitly."""


def _check_dim(t: Arrays, p: Dim, o: Options) -> None:
    rank = t["input"].ndim
    bound = max(rank, 1)  # a 0-d tensor takes dim 0 or -1
    if not -bound <= p.dim < bound:
        raise Invalid.at(
            ("dim",),
            f"dim = {p.dim} is out of range for input of {rank} dimensions:"
            f" it must be in [{-bound}, {bound})",
            "dim_out_of_range",
        )


def _normalising(name: str, summary: str) -> Spec:
    return Spec(
        name=name,
        summary=summary,
        reference=f"torch.nn.functional.{name}",
        tensors=INPUT,
        params=Dim,
        check=_check_dim,
        call=getattr(F, name),
    )


ACTIVATIONS = registry(
    (
        _normalising("softmax", "exp(input) / sum(exp(input)) along dim: probabilities."),
        _normalising("log_softmax", "input - logsumexp(input) along dim: log-probabilities."),
        Spec(
            name="sigmoid",
            summary="1 / (1 + exp(-input)) per element: probabilities of binary logits.",
            reference="torch.sigmoid",
            tensors=INPUT,
            call=torch.sigmoid,
        ),
        Spec(
            name="logsigmoid",
            summary="log(sigmoid(input)) per element, computed stably: log-probabilities.",
            reference="torch.nn.functional.logsigmoid",
            tensors=INPUT,
            call=F.logsigmoid,
        ),
    )
)
