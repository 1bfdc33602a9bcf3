"""Grades as Specs: one per metric (POST /v1/grades/{name}, a /v2 model of its name) and
`grades`, several metrics in one pass over one upload (POST /v1/grades, the /v2 model
`grades`). Both answer each metric's values, tables and state; `finalize` turns states (of
parts, merged) into the same answer.
"""

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, cast

import numpy as np
import torch
from pydantic import Field, ValidationError, create_model, field_validator

from service import checks
from service.errors import Invalid, from_validation_errors
from service.grades import inputs, states
from service.grades import values as formulas
from service.grades.metrics import METRICS, Data, Metric
from service.grades.params import Shared, metrics_mapping
from service.spec import (
    NS_PER_ELEMENT,
    Arrays,
    Cost,
    Options,
    Params,
    Spec,
    TensorParam,
    TensorSpec,
    camel,
    itemsize,
    registry,
)
from service.types import MAX_RANK

MAX_METRICS = 32
KEY = re.compile(r"[A-Za-z0-9_-]{1,64}")


@dataclass(frozen=True)
class Grade:
    """One metric's answer: its values, its tables, and its state with the settings."""

    metric: str
    settings: dict[str, Any]
    values: formulas.Values
    tables: formulas.Tables
    state: formulas.Arrays

    def outputs(self, prefix: str = "") -> dict[str, np.ndarray]:
        """Its values and state arrays as /v2 outputs: "auroc", "state.tp"."""
        found = {f"{prefix}{name}": np.asarray(v, np.float64) for name, v in self.values.items()}
        return found | {f"{prefix}state.{name}": a for name, a in self.state.items()}

    def body(self) -> dict[str, Any]:
        """As JSON writes it (orjson takes C-ordered arrays only)."""
        tables = {name: _ordered(table) for name, table in self.tables.items()}
        return {
            "metric": self.metric,
            "values": _ordered(self.values),
            "tables": tables,
            "state": {
                "metric": self.metric,
                "settings": self.settings,
                "arrays": _ordered(self.state),
            },
        }


def _ordered(arrays: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    return {name: a if a.flags.c_contiguous else a.copy(order="C") for name, a in arrays.items()}


@dataclass(frozen=True)
class Graded:
    """What a grade spec's call gives: each metric's grade by key, and the /v2 outputs."""

    grades: dict[str, Grade]
    outputs: dict[str, np.ndarray]


def _finish(metric: Metric, state: formulas.State) -> Grade:
    found, tables = metric.finalize(state)
    return Grade(metric.name, dict(state.settings), found, tables, state.arrays)


def _settings(shared: Shared, own: Params, classes: int) -> dict[str, Any]:
    return shared.model_dump() | {"num_classes": _settled(classes)} | own.model_dump()


def _settled(classes: int) -> int | None:
    """num_classes as a state's settings hold it: C or L; none for binary (one label, as the
    task says) or regression."""
    return classes if classes > 1 else None


def _grade(metric: Metric, data: Data, shared: Shared, own: Params, classes: int) -> Grade:
    arrays = {name: t.numpy(force=True) for name, t in metric.state(data, own).items()}
    return _finish(metric, formulas.State(metric.name, _settings(shared, own, classes), arrays))


def _data(
    input: torch.Tensor, target: torch.Tensor, sample_weight: torch.Tensor | None, shared: Shared
) -> Data:
    return Data(
        input, target, sample_weight, lambda: inputs.prepare(input, target, sample_weight, shared)
    )


def _tensors(ranks: range, regression: bool = False) -> tuple[TensorSpec, ...]:
    return (
        TensorSpec(
            "input",
            "logits, probabilities or predictions, as input_kind says",
            "(N) binary or multiclass predictions, (N, C) multiclass, (N, L) multilabel;"
            " regression any shape",
            dtype="int or float",
            ranks=ranks,
            dims=1 if regression else 2,
            datatype="FP32",
        ),
        TensorSpec(
            "target",
            "class indices (multiclass), 0/1 labels (binary, multilabel), or values",
            "(N), (N, L) multilabel; regression input's shape",
            dtype="int or float",
            ranks=ranks,
            datatype="FP32" if regression else None,
        ),
    )


SAMPLE_WEIGHT = TensorParam(
    "sample_weight", "a weight >= 0 per sample, for every count and sum", "(N)", batch=0
)


def _shared(params: Any) -> Shared:
    return Shared.model_validate({name: getattr(params, name) for name in Shared.model_fields})


def _own(metric: Metric, params: Any) -> Params:
    return metric.params.model_validate(
        {name: getattr(params, name) for name in metric.params.model_fields}
    )


STATE_BYTES = 32
"""What a state's element costs in memory: itself and its merge's, finalisation's and JSON's
temporaries (a (C, C) confusion matrix, (T, C) curves)."""
STATE_NS = 20.0


def _cost(metrics: list[tuple[Metric, Params]], arrays: Arrays, params: Any, options: Any) -> Cost:
    """Passes over the input's elements, and the states' own size: a request with few samples
    but many classes (predictions with num_classes 10**6) pays for its (C, C) matrix."""
    shared = _shared(params)
    elements = arrays["input"].size
    classes = inputs.classes(arrays["input"], shared)
    state = sum(
        math.prod(shape)
        for metric, own in metrics
        for shape in metric.shapes(classes, _settings(shared, own, classes)).values()
    )
    passes = 3 + sum(metric.passes for metric, _ in metrics)
    fixed = Cost(state * STATE_NS * 1e-9, state * STATE_BYTES + states.ROWS * 16)
    return Cost(
        elements * NS_PER_ELEMENT * passes * 1e-9 + fixed.seconds,
        elements * itemsize(options) * 4 + fixed.bytes,
        fixed.work,
    )


@dataclass(frozen=True)
class GradeSpec(Spec):
    """A metric as a function: input and target in, its grade out."""

    metric: Metric | None = None

    def _metric(self) -> Metric:
        assert self.metric is not None
        return self.metric

    def outputs(self) -> dict[str, int]:
        """Its values (numbers; one per class with average none), then its state's arrays,
        with their ranks for the first task it takes (multiclass where it takes it)."""
        m = self._metric()
        task = "multiclass" if "multiclass" in m.tasks else m.tasks[0]
        shapes = m.shapes(2, {"task": task, "n_bins": 15, "thresholds": 100})
        return dict.fromkeys(m.values, 0) | {f"state.{n}": len(s) for n, s in shapes.items()}

    def produced(self, params: Any, options: Any) -> list[str]:
        metric = self._metric()
        return [*metric.values_of(params.task), *(f"state.{name}" for name in metric.merges)]

    def entry(self) -> dict[str, Any]:
        return super().entry() | self._metric().entry()

    def output_datatype(self, name: str) -> str | None:
        return "FP64"


def _metric_spec(metric: Metric) -> GradeSpec:
    params = create_model(f"{camel(metric.name)}Params", __base__=(Shared, metric.params))
    ranks = range(1, MAX_RANK + 1) if metric.tasks == ("regression",) else range(1, 3)

    def check(arrays: Arrays, p: Any, o: Options) -> Arrays:
        shared = _shared(p)
        inputs.supports(shared, metric.name, metric.tasks, metric.kinds)
        checked = inputs.check(arrays, shared, o.dtype)
        metric.check(inputs.classes(arrays["input"], shared), shared, _own(metric, p))
        return checked

    def call(
        input: torch.Tensor,
        target: torch.Tensor,
        sample_weight: torch.Tensor | None = None,
        **p: Any,
    ) -> Graded:
        given = params.model_validate(p)
        shared = _shared(given)
        classes = inputs.classes(input, shared)
        grade = _grade(
            metric,
            _data(input, target, sample_weight, shared),
            shared,
            _own(metric, given),
            classes,
        )
        return Graded({metric.name: grade}, grade.outputs())

    return GradeSpec(
        name=metric.name,
        summary=metric.summary,
        reference=metric.reference,
        tensors=_tensors(ranks, metric.tasks == ("regression",)),
        tensor_params=(SAMPLE_WEIGHT,),
        params=params,
        check=check,
        cost=lambda arrays, p, o: _cost([(metric, _own(metric, p))], arrays, p, o),
        call=call,
        metric=metric,
    )


# several metrics in one pass


class GradesParams(Shared):
    metrics: dict[str, dict[str, Any]] = Field(min_length=1, max_length=MAX_METRICS)
    """The metrics to compute, by the key their answer goes under: {"top_5": {"metric":
    "accuracy", "top_k": 5}}, each with its own parameters ("metric" defaults to the key); or
    a list of metric names. On /v2, JSON text of the mapping, or names with commas."""

    @field_validator("metrics", mode="before")
    @classmethod
    def _mapping(cls, given: Any) -> Any:
        given = metrics_mapping(given)
        if isinstance(given, list):
            if not all(isinstance(name, str) for name in given):
                raise ValueError("metrics must be names, or an object of them")
            return {name: {} for name in given}
        return given


def plan(params: Any) -> dict[str, tuple[Metric, Params]]:
    """Each key's metric and its own parameters, checked: Invalid at metrics.{key}."""
    found: dict[str, tuple[Metric, Params]] = {}
    for key, given in params.metrics.items():
        if not KEY.fullmatch(key):
            raise Invalid.at(
                ("metrics", key),
                f"metrics key '{key[:80]}' must be 1 to 64 letters, digits, '_' or '-'",
                "key",
            )
        own = dict(given)
        name = own.pop("metric", key)
        if not isinstance(name, str):
            raise Invalid.at(
                ("metrics", key, "metric"),
                "metric must be a metric's name, a string",
                "string_type",
            )
        if name not in METRICS:
            raise Invalid.at(
                ("metrics", key, "metric"),
                f"unknown metric '{name}'; known: {', '.join(METRICS)}",
                "unknown_metric",
            )
        metric = METRICS[name]
        try:
            found[key] = (metric, metric.params.model_validate(own))
        except ValidationError as error:
            raise _invalid(error, "metrics", key) from None
    return found


def _invalid(error: ValidationError, *prefix: str) -> Invalid:
    """pydantic's errors, each located under prefix (and named so in its message)."""
    errors = error.errors(include_url=False)
    return from_validation_errors([{**e, "loc": (*prefix, *e["loc"])} for e in errors])


def _check_grades(arrays: Arrays, p: Any, o: Options) -> Arrays:
    shared = _shared(p)
    metrics = plan(p)
    for metric, _ in metrics.values():
        inputs.supports(shared, metric.name, metric.tasks, metric.kinds)
    checked = inputs.check(arrays, shared, o.dtype)
    for key, (metric, own) in metrics.items():
        try:
            metric.check(inputs.classes(arrays["input"], shared), shared, own)
        except Invalid as error:
            raise error.under("metrics", key) from None
    return checked


def _call_grades(
    input: torch.Tensor, target: torch.Tensor, sample_weight: torch.Tensor | None = None, **p: Any
) -> Graded:
    given = GradesParams.model_validate(p)
    shared = _shared(given)
    data, classes = _data(input, target, sample_weight, shared), inputs.classes(input, shared)
    grades = {
        key: _grade(metric, data, shared, own, classes)
        for key, (metric, own) in plan(given).items()
    }
    outputs = {name: a for key, g in grades.items() for name, a in g.outputs(f"{key}.").items()}
    return Graded(grades, outputs)


class GradesSpec(Spec):
    """Several metrics of one upload: the metrics parameter names them."""

    def outputs(self) -> dict[str, int]:
        return {}

    def produced(self, params: Any, options: Any) -> list[str]:
        return [
            f"{key}.{name}"
            for key, (metric, own) in plan(params).items()
            for name in (*metric.values_of(params.task), *(f"state.{s}" for s in metric.merges))
        ]


GRADES = registry(
    (
        *(_metric_spec(metric) for metric in METRICS.values()),
        GradesSpec(
            name="grades",
            summary="Several metrics of one upload of the data, in one pass: each metric's"
            " values, tables and mergeable state, under the key it was asked by.",
            reference="the metrics of GET /v1/grades",
            tensors=_tensors(range(1, MAX_RANK + 1)),
            tensor_params=(SAMPLE_WEIGHT,),
            params=GradesParams,
            check=_check_grades,
            cost=lambda arrays, p, o: _cost(list(plan(p).values()), arrays, p, o),
            call=_call_grades,
        ),
    )
)


# states back from a client: read, checked, merged and finalised


def read_state(raw: Any) -> formulas.State:
    """A state as an answer gave it, checked against its metric's declaration: Invalid at
    the field it is wrong in."""
    if not isinstance(raw, dict) or set(raw) != {"metric", "settings", "arrays"}:
        raise Invalid.at((), "a state is an object of metric, settings and arrays", "state")
    name = raw["metric"]
    if not isinstance(name, str):
        raise Invalid.at(("metric",), "metric must be a metric's name, a string", "string_type")
    if name not in METRICS:
        raise Invalid.at(
            ("metric",), f"unknown metric '{name}'; known: {', '.join(METRICS)}", "unknown_metric"
        )
    metric = METRICS[name]
    try:  # the settings are the metric's parameters, shared and its own
        settings = GRADES[name].params.model_validate(raw["settings"])
    except ValidationError as error:
        raise _invalid(error, "settings") from None
    shared = _shared(settings)
    if shared.task not in metric.tasks:
        raise Invalid.at(
            ("settings", "task"),
            f"{name} grades the tasks {', '.join(metric.tasks)}",
            "task_unsupported",
        )
    classes = (
        0 if shared.task == "regression" else (1 if shared.task == "binary" else shared.num_classes)
    )
    if classes is None:
        raise Invalid.at(
            ("settings", "num_classes"), "num_classes is required in a state's settings", "missing"
        )
    shapes = metric.shapes(classes, settings.model_dump())
    arrays = raw["arrays"]
    if not isinstance(arrays, dict) or set(arrays) != set(shapes):
        raise Invalid.at(
            ("arrays",), f"a {name} state's arrays are: {', '.join(shapes)}", "state_arrays"
        )
    read = {key: _array(key, arrays[key], shape) for key, shape in shapes.items()}
    for key, array in read.items():
        if key not in metric.signed:
            checks.reject_first(
                f"arrays.{key}",
                array,
                array < 0,
                "is negative; it is a count or a sum of squares, >= 0",
                "state_negative",
            )
    return formulas.State(name, settings.model_dump() | {"num_classes": _settled(classes)}, read)


def _array(name: str, raw: Any, shape: tuple[int, ...]) -> np.ndarray:
    try:
        array = np.asarray(raw, dtype=np.float64)
    except (ValueError, TypeError):
        raise Invalid.at(
            ("arrays", name), f"arrays.{name} is not an array of numbers", "state_array"
        ) from None
    if array.shape != shape:
        raise Invalid.at(
            ("arrays", name),
            f"arrays.{name} has shape {array.shape}; its settings make it {shape}",
            "state_shape",
        )
    if not np.isfinite(array).all():
        raise Invalid.at(
            ("arrays", name), f"arrays.{name} holds a value that is not finite", "state_finite"
        )
    return array


def finalize(states: list[formulas.State]) -> Grade:
    """The states merged (their metric and settings equal: else Invalid at the first that
    differs) and turned into values and tables."""
    first = states[0]
    for index, state in enumerate(states[1:], 1):
        if state.metric != first.metric:
            raise Invalid.at(
                (index, "metric"),
                f"a state of {state.metric} cannot merge with one of {first.metric}",
                "state_mismatch",
            )
        differ = [k for k in first.settings if state.settings[k] != first.settings[k]]
        if differ:
            k = differ[0]
            raise Invalid.at(
                (index, "settings", k),
                f"settings differ: {k} is {state.settings[k]!r} here and {first.settings[k]!r}"
                " in the first state; only states computed alike merge",
                "state_mismatch",
            )
    metric = METRICS[first.metric]
    return _finish(metric, formulas.merge(states, metric.merges))


def grade_specs() -> Mapping[str, Spec]:
    return cast(Mapping[str, Spec], GRADES)
