"""How /v1 shows each kind of function: its catalogue's models, its response's model, and the
body of a response built from the data plane's Result."""

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from pydantic import BaseModel

from service.api.models import (
    ActivationCatalogue,
    ActivationEntry,
    ActivationResponse,
    Catalogue,
    GradeCatalogue,
    GradeEntry,
    GradeResponse,
    GradesResponse,
    LabelQualityResponse,
    LossEntry,
    LossResponse,
)
from service.engine import Result
from service.kinds import Kind
from service.spec import Spec
from service.tensors.torch import warnings

Body = Callable[[Spec, Result, Any], dict[str, Any]]
"""body(spec, result, options): the content of the v1 response (its `response` model)."""


@dataclass(frozen=True)
class View:
    entry: type[BaseModel]
    """The catalogue entry's model."""
    catalogue: type[BaseModel] | None
    """GET /v1/{path}'s model, {path: [entry, ...]}; None for a kind of one function, served
    at /v1/{name} itself (label_quality)."""
    response: type[BaseModel]
    """The v1 response's model."""
    body: Body
    responses: Mapping[str, type[BaseModel]] = field(default_factory=dict)
    """The response's model of a function whose answer differs from its kind's, by name."""
    listed: Mapping[str, Any] = field(default_factory=dict)
    """What the catalogue lists beside the entries (the grades' finalize call)."""

    def response_of(self, spec: Spec) -> type[BaseModel]:
        return self.responses.get(spec.name, self.response)


def _loss_body(spec: Spec, result: Result, options: Any) -> dict[str, Any]:
    loss = result.outputs["loss"]
    grad = {name.removeprefix("grad_"): g for name, g in result.outputs.items() if name != "loss"}
    content: dict[str, Any] = {
        "loss": loss,
        "reduction": options.reduction,
        "shape": list(loss.shape),
        "dtype": options.dtype,
        "device": result.device,
    }
    if grad:
        content["grad"] = grad
    if result.divisor is not None:
        content["divisor"] = result.divisor
    named = {"loss": loss} | {f"grad.{tensor}": g for tensor, g in grad.items()}
    return _warned(content, named)


def _activation_body(spec: Spec, result: Result, options: Any) -> dict[str, Any]:
    output = result.outputs["output"]
    content = {
        "output": output,
        "shape": list(output.shape),
        "dtype": options.dtype,
        "device": result.device,
    }
    return _warned(content, {"output": output})


def _score_body(spec: Spec, result: Result, options: Any) -> dict[str, Any]:
    scores = {name: a for name, a in result.outputs.items() if name != "predicted"}
    content = {
        "scores": scores,
        "predicted": result.outputs["predicted"],
        "dtype": options.dtype,
        "device": result.device,
    }
    return _warned(content, {f"scores.{name}": a for name, a in scores.items()})


def _grade_body(spec: Spec, result: Result, options: Any) -> dict[str, Any]:
    """A metric's grade (POST /v1/grades/{name}), or each one's by key (POST /v1/grades)."""
    grades = result.grades or {}
    where = {"dtype": options.dtype, "device": result.device}
    if spec.name in grades and len(grades) == 1 and spec.name != "grades":
        return _warned(grades[spec.name].body() | where, grades[spec.name].outputs())
    content = {"grades": {key: g.body() for key, g in grades.items()}} | where
    return _warned(
        content, {n: a for key, g in grades.items() for n, a in g.outputs(f"{key}.").items()}
    )


def _warned(content: dict[str, Any], named: dict[str, np.ndarray]) -> dict[str, Any]:
    """content, with `warnings` when a result is not finite (JSON writes it as null)."""
    if found := warnings(named):
        content["warnings"] = found
    return content


FINALIZE = {
    "method": "POST",
    "path": "/v1/grades/finalize",
    "summary": "States of parts (each grade's `state`) merged by each array's declared merge,"
    " and turned into values and tables by the metric's formula: the one copy of it.",
    "body": '{"states": {key: [state, ...]}}',
}


VIEWS = {
    "losses": View(LossEntry, Catalogue, LossResponse, _loss_body),
    "activations": View(ActivationEntry, ActivationCatalogue, ActivationResponse, _activation_body),
    "label_quality": View(ActivationEntry, None, LabelQualityResponse, _score_body),
    "grades": View(
        GradeEntry,
        GradeCatalogue,
        GradeResponse,
        _grade_body,
        {"grades": GradesResponse},
        {"finalize": FINALIZE},
    ),
}
"""Each kind's view, by its path."""


def view(kind: Kind) -> View:
    return VIEWS[kind.path]
