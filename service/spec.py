"""LossSpec: the one declaration of a loss, from which its endpoint, schema and catalogue derive.

A declaration holds the loss's tensors (name, kind, ranks, element type, whether it gets a
gradient), its tensor parameters (`weight`, `pos_weight`, ...), a pydantic model of its scalar
parameters with PyTorch's defaults, a check that rejects what PyTorch would raise on, assert on
or answer with NaN, and the torch call itself.
"""

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from functools import cached_property
from typing import Annotated, Any, Literal, TypeVar, cast, get_origin

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError, create_model

from service.errors import Invalid, from_validation_errors
from service.types import DEVICE_PATTERN, MAX_RANK, DTypeName, ElementKind, Reduction

Arrays = dict[str, np.ndarray]


@dataclass(frozen=True, slots=True)
class TensorSpec:
    name: str
    kind: str
    """What the numbers are: "logits", "class indices or class probabilities", ..."""
    shape: str
    """The accepted shapes in PyTorch's notation: "(N, C) or (N, C, d1, ..., dK)"."""
    dtype: ElementKind = "float"
    grad: bool = False
    """Whether `grad: true` returns this tensor's gradient (predictions only)."""
    ranks: range = range(MAX_RANK + 1)
    may_be_empty: bool = False
    dims: int = 1
    """The rank /v2 model metadata shows, all dimensions -1: the usual batched form, e.g. 2
    for (N, C) logits. Every rank in `ranks` is accepted."""
    batch: int | None = 0
    """The axis of the batch (N) in the batched form, along which a client may split a call
    (1 for CTC's (T, N, C) log_probs); None where the tensor has none."""
    datatype: str | None = None
    """The datatype /v2 model metadata shows, where the element kind's usual one is not what
    users send (a grade's input: FP32 logits, though predictions may be INT64)."""

    def entry(self) -> dict[str, Any]:
        fields = ("name", "kind", "shape", "dtype", "grad", "batch")
        return {name: getattr(self, name) for name in fields}


@dataclass(frozen=True, slots=True)
class TensorParam:
    """An optional tensor keyword argument such as `weight`; never differentiated."""

    name: str
    description: str
    shape: str
    ranks: range = range(MAX_RANK + 1)
    type: str = "tensor"
    dims: int = 1
    """The rank /v2 model metadata shows, as TensorSpec.dims."""
    batch: int | None = None
    """As TensorSpec.batch, for a parameter of input's shape (a weight per element); one that
    broadcasts (size 1 there) goes whole with each part."""


Int64 = Annotated[int, Field(ge=-(2**63), lt=2**63)]
"""An integer parameter torch takes as a C int64."""


class Params(BaseModel):
    """Scalar loss parameters: strict (no 2.0 for an int, no 1 for a bool), no unknown fields."""

    model_config = ConfigDict(
        extra="forbid", strict=True, frozen=True, use_attribute_docstrings=True
    )


class Options(Params):
    """What every request may set besides its tensors and parameters."""

    dtype: DTypeName = "float32"
    """Precision of the computation and of the returned numbers."""
    device: str | None = Field(default=None, pattern=DEVICE_PATTERN.pattern)
    """auto, cpu, cuda or cuda:N; null (the default) uses the server's default device."""


class LossOptions(Options):
    reduction: Reduction = "mean"
    """How the per-element losses are combined: none, mean or sum, as in PyTorch."""
    grad: bool = False
    """Also return the gradient of the loss (of its sum for reduction none) per prediction."""


WORK_SECONDS = 2.0
WORK_BYTES = float(1 << 30)
NS_PER_ELEMENT = 5.0
"""What most functions take per element of their tensors on one core, forward (measured with
`make bench`: cross entropy takes 1 to 4 ns); a gradient triples it."""


@dataclass(frozen=True, slots=True)
class Cost:
    """A computation's estimated time on one core and its peak memory beyond its inputs."""

    seconds: float
    bytes: float
    fixed: float = 0.0
    """The work of it that does not shrink with the batch (a grade's (C, C) matrix): a refusal
    says it, so that a client does not cut a call that no cut makes fit."""

    @property
    def work(self) -> float:
        """In units of 2 s of one core or 1 GiB, whichever the computation comes closer to:
        what LOSS_SERVICE_MAX_WORK bounds."""
        return max(self.seconds / WORK_SECONDS, self.bytes / WORK_BYTES)


Estimate = Callable[[Arrays, Any, Any], Cost]
"""estimate(arrays, params, options) -> Cost, from the validated arrays' shapes."""


def itemsize(options: Any) -> int:
    return 8 if options.dtype == "float64" else 4


def linear(arrays: Arrays, params: Any, options: Any) -> Cost:
    """A pass or two over the elements: NS_PER_ELEMENT each (three times that with grad), and
    a few arrays of their size (results, saved activations, gradients)."""
    elements = sum(a.size for a in arrays.values())
    grad = getattr(options, "grad", False)
    seconds = elements * NS_PER_ELEMENT * (3 if grad else 1) * 1e-9
    return Cost(seconds, elements * itemsize(options) * (4 if grad else 2))


Check = Callable[[Arrays, Any, Any], Arrays | None]
"""check(arrays, params, options) raises Invalid, or returns replaced arrays (or None)."""


def _no_check(arrays: Arrays, params: Any, options: Any) -> None:
    return None


@dataclass(frozen=True)
class Spec:
    """A torch function served over HTTP: a loss, or an activation."""

    name: str
    """The torch.nn.functional name, e.g. "cross_entropy"."""
    summary: str
    reference: str
    tensors: tuple[TensorSpec, ...]
    call: Callable[..., Any]
    """call(**tensors, **tensor_params, **params[, reduction=...]) -> the result tensor (a
    dict of them, by name, for a ScoreSpec)."""
    params: type[Params] = Params
    tensor_params: tuple[TensorParam, ...] = ()
    check: Check = _no_check
    cost: Estimate = linear
    """Its time and memory as a function of the validated arrays' shapes (spec.Cost)."""
    options: type[Options] = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "options", self._options())

    def _options(self) -> type[Options]:
        return Options

    @cached_property
    def element_kinds(self) -> dict[str, ElementKind]:
        kinds = {t.name: t.dtype for t in self.tensors}
        return kinds | {p.name: "float" for p in self.tensor_params}

    @cached_property
    def scalars(self) -> tuple[str, ...]:
        """The parameters and options: every field that is not a tensor."""
        return (*self.params.model_fields, *self.options.model_fields)

    @cached_property
    def lists(self) -> tuple[str, ...]:
        """The parameters that take a list (label_quality's scores)."""
        models = (self.params, self.options)
        named = (item for model in models for item in model.model_fields.items())
        return tuple(name for name, info in named if get_origin(info.annotation) is list)

    @cached_property
    def fields(self) -> tuple[str, ...]:
        """Every field a request may hold."""
        return (*self.element_kinds, *self.scalars)

    @cached_property
    def required(self) -> frozenset[str]:
        """The tensors a request must hold (a tensor parameter may be left out, or null)."""
        return frozenset(t.name for t in self.tensors)

    @cached_property
    def field_set(self) -> frozenset[str]:
        """fields, to test names against."""
        return frozenset(self.fields)

    def outputs(self) -> dict[str, int]:
        """Every result it can give, by /v2 output name, with the rank metadata shows."""
        return {"output": self.tensors[0].dims}

    def produced(self, params: Any, options: Any) -> list[str]:
        """The results a request with these parameters and options gets."""
        return ["output"]

    def output_datatype(self, name: str) -> str | None:
        """An output's /v2 datatype where it is not the computation's (FP32 by default)."""
        return None

    @cached_property
    def _scalar_models(self) -> tuple[tuple[type[Params], frozenset[str], Params | None], ...]:
        """The params' and the options' models, each with its field names and its instance of
        defaults (None where a field is required): models are frozen, so it is shared."""
        return tuple(
            (model, frozenset(model.model_fields), _defaults(model))
            for model in (self.params, self.options)
        )

    def parse_options(self, values: Mapping[str, Any]) -> tuple[Any, Any]:
        """The scalar fields as (params, options); one Invalid listing every bad field."""
        errors: list[Any] = []
        results = []
        for model, names, defaults in self._scalar_models:
            subset = {k: v for k, v in values.items() if k in names}
            if not subset and defaults is not None:
                results.append(defaults)
                continue
            try:
                results.append(model.model_validate(subset))
            except ValidationError as error:
                errors.extend(error.errors(include_url=False))
        if errors:
            raise from_validation_errors(errors)
        params, options = results
        if cast(Options, options).dtype == "float32":
            _fit_float32(params)
        return params, options

    def validate(self, arrays: Arrays, params: Params, options: Options) -> Arrays:
        """The arrays the torch call may safely take, or Invalid naming field, index and rule."""
        for spec in self.tensors:
            if spec.name not in arrays:
                raise Invalid.at((spec.name,), f"{spec.name} is required", "missing")
            _check_rank(spec.name, arrays[spec.name], spec.ranks, spec.shape)
            if arrays[spec.name].size == 0 and not spec.may_be_empty:
                raise Invalid.at(
                    (spec.name,),
                    f"{spec.name} of shape {arrays[spec.name].shape} is empty;"
                    f" {self.name} needs at least one element",
                    "empty",
                )
        for param in self.tensor_params:
            if param.name in arrays:
                _check_rank(param.name, arrays[param.name], param.ranks, param.shape)
        return self.check(arrays, params, options) or arrays

    def entry(self) -> dict[str, Any]:
        """The catalogue entry."""
        parameters = {
            p.name: {
                "type": p.type,
                "default": None,
                "required": False,
                "description": p.description,
                "batch": p.batch,
            }
            for p in self.tensor_params
        }
        schema = self.params.model_json_schema()["properties"]
        for name, info in self.params.model_fields.items():
            parameters[name] = {
                "type": schema[name].get("type", "number"),
                "default": None
                if info.is_required()
                else info.get_default(call_default_factory=True),
                "required": info.is_required(),
                "description": info.description,
                "batch": None,
            }
        return {
            "name": self.name,
            "summary": self.summary,
            "reference": self.reference,
            "tensors": [t.entry() for t in self.tensors],
            "parameters": parameters,
        }


Divisor = Callable[[Arrays, Any, Any], float]
"""divisor(arrays, params, options): what reduction "mean" divides the sum by."""


def elements(name: str) -> Divisor:
    """An elementwise loss's: the elements of tensor `name`."""
    return lambda arrays, params, options: float(arrays[name].size)


def per_sample(name: str) -> Divisor:
    """A loss per sample of `name`, (N, C) or (N, D), one for (C) or (D): N."""
    return lambda arrays, params, options: float(
        arrays[name].shape[0] if arrays[name].ndim == 2 else 1
    )


@dataclass(frozen=True)
class LossSpec(Spec):
    reductions: tuple[Reduction, ...] = ("none", "mean", "sum")
    divisor: Divisor | None = None
    """What "mean" (and "batchmean") divides the sum by, given the validated arrays; by
    default the elements of the first tensor. A response carries it so that a client can
    join the means of parts of a call exactly."""

    def mean_divisor(self, arrays: Arrays, params: Any, options: Any) -> float:
        return (self.divisor or elements(self.tensors[0].name))(arrays, params, options)

    def _options(self) -> type[LossOptions]:
        reduction = cast(Any, Literal)[self.reductions]  # a Literal built from the declaration
        return create_model(
            f"{camel(self.name)}Options",
            __base__=LossOptions,
            reduction=(reduction, Field(default="mean", description=_REDUCTION_DOC)),
        )

    def outputs(self) -> dict[str, int]:
        """The loss (a number under the default reduction, "mean"), then the gradients."""
        return {"loss": 0} | {f"grad_{t.name}": t.dims for t in self.tensors if t.grad}

    def produced(self, params: Any, options: Any) -> list[str]:
        return list(self.outputs()) if options.grad else ["loss"]

    def entry(self) -> dict[str, Any]:
        return super().entry() | {"reductions": list(self.reductions), "default_reduction": "mean"}


_REDUCTION_DOC = LossOptions.model_fields["reduction"].description


def camel(name: str) -> str:
    """ "cross_entropy" -> "CrossEntropy", for model names."""
    return "".join(part.capitalize() for part in name.split("_"))


FLOAT32_MAX = float(np.finfo(np.float32).max)


def _defaults(model: type[Params]) -> Params | None:
    try:
        return model()
    except ValidationError:  # a field without a default
        return None


def _fit_float32(params: Params) -> None:
    """A float parameter beyond float32's range cannot take part in a float32 computation:
    torch refuses to convert a number above float32's largest, where it rounds an array's
    values (service.tensors.torch.FLOAT32_OVERFLOW)."""
    for name, value in params:
        if isinstance(value, float) and abs(value) > FLOAT32_MAX:
            raise Invalid.at(
                (name,),
                f"{name} = {value!r} is beyond float32's range; send dtype float64",
                "float32_overflow",
            )


def _check_rank(name: str, array: np.ndarray, ranks: range, shape: str) -> None:
    if array.ndim not in ranks:
        raise Invalid.at(
            (name,),
            f"{name} has {array.ndim} dimensions (shape {array.shape}); expected {shape}",
            "rank",
        )


S = TypeVar("S", bound=Spec)


def registry(specs: Iterable[S]) -> dict[str, S]:
    """Specs by name, in declaration order; a name declared twice is an error."""
    found: dict[str, S] = {}
    for spec in specs:
        if spec.name in found:
            raise ValueError(f"{spec.name!r} is declared twice")
        found[spec.name] = spec
    return found
