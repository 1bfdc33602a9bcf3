"""One inference, as the Open Inference Protocol defines it, whatever carries it: the model by
name and version, its metadata, the request's parameters and requested outputs, and the
response's outputs. A transport turns its message into an Inference and an Answer into its
message (service.api.oip for REST, service.grpc for gRPC); errors are ServiceErrors, which
each transport renders with its own status.

Every loss, activation and score is a model of one version, "1". An inference's inputs are the
/v1 tensors by name, its parameters the /v1 scalar fields, validated alike; its outputs are the
value ("loss", "output", the scores) and, with grad, grad_{tensor}.
"""

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import msgspec
import numpy as np

from service.dataplane import Request
from service.engine import Result
from service.errors import BadRequest, Invalid, NotFound, not_found
from service.kinds import MODELS, Kind
from service.protocol.structs import MetadataTensor, ModelMetadata
from service.protocol.tensors import (
    DATATYPE_OF,
    METADATA_DATATYPE,
    OUTPUT_DATATYPE,
    Input,
    read_inputs,
)
from service.spec import Spec
from service.tensors.torch import warnings

VERSION = "1"
EXTENSIONS = ["binary_tensor_data"]
Parameters = Mapping[str, Any]
"""A message's parameters: booleans, numbers and strings by name."""


def lookup(
    name: str, version: str | None, models: Mapping[str, tuple[Kind, Spec]] = MODELS
) -> tuple[Kind, Spec]:
    """The model, or a 404 naming the known ones (or versions)."""
    if name not in models:
        raise not_found(list(models), "model", name)
    if version not in (None, "", VERSION):
        raise NotFound(f"model '{name}' has no version '{version}'; it has: {VERSION}")
    return models[name]


def metadata(spec: Spec) -> ModelMetadata:
    """Inputs: the tensors, then the optional tensor parameters; outputs: every result the
    model can give. Shapes show the usual batched rank (TensorSpec.dims), all dimensions -1."""
    inputs = [
        MetadataTensor(t.name, t.datatype or METADATA_DATATYPE[t.dtype], [-1] * t.dims)
        for t in spec.tensors
    ]
    inputs += [MetadataTensor(p.name, "FP32", [-1] * p.dims) for p in spec.tensor_params]
    outputs = [
        MetadataTensor(
            name, spec.output_datatype(name) or OUTPUT_DATATYPE.get(name, "FP32"), [-1] * dims
        )
        for name, dims in spec.outputs().items()
    ]
    return ModelMetadata(spec.name, [VERSION], "pytorch", inputs, outputs)


@dataclass(frozen=True, slots=True)
class RequestedOutput:
    name: str
    parameters: Parameters = field(default_factory=dict)
    """binary_data: whether it goes as bytes (REST's binary extension, gRPC's raw contents)."""


@dataclass(frozen=True, slots=True)
class Inference:
    """A request as its transport hands it over."""

    inputs: Sequence[Input]
    id: str | None = None
    parameters: Parameters = field(default_factory=dict)
    outputs: Sequence[RequestedOutput] | None = None
    """The outputs asked for; None for every one."""


@dataclass(frozen=True, slots=True)
class Output:
    name: str
    datatype: str
    array: np.ndarray
    binary: bool
    """As bytes (REST's binary data, gRPC's raw contents), else as values."""


@dataclass(frozen=True, slots=True)
class Answer:
    """A response, for its transport to write."""

    model_name: str
    id: str | None
    parameters: dict[str, Any]
    outputs: list[Output]
    model_version: str = VERSION


class Exchange:
    """One inference: decodes an Inference into the data plane's Request and encodes its
    Result, remembering in between the request's id and the outputs it asked for.

    `binary` is what an output goes as unless the request says otherwise (its
    binary_data_output parameter, an output's binary_data): values on REST, bytes on gRPC,
    whose clients read raw contents."""

    def __init__(self, kind: Kind, spec: Spec, name: str, binary: bool) -> None:
        self.kind, self.spec, self.name, self.binary = kind, spec, name, binary
        self.id: str | None = None
        self.outputs: dict[str, bool] = {}
        """The outputs to answer, by name, each with whether it goes as bytes."""

    def decode(self, inference: Inference, max_elements: int) -> Request:
        self.id = inference.id
        parameters = dict(inference.parameters)
        binary = flag(parameters.pop("binary_data_output", self.binary), "binary_data_output")
        for key in parameters:
            if key not in self.spec.scalars:
                raise Invalid.at(
                    (key,),
                    f"unknown parameter '{key}'; {self.spec.name} takes:"
                    f" {', '.join(self.spec.scalars)}",
                    "extra_forbidden",
                )
        params, options = self.spec.parse_options(parameters)
        self.outputs = self._select(inference.outputs, params, options, binary)
        dtype = np.dtype(options.dtype)
        arrays = read_inputs(inference.inputs, self.spec, max_elements, dtype)
        return Request(arrays, params, options)

    def _select(
        self,
        requested: Sequence[RequestedOutput] | None,
        params: Any,
        options: Any,
        binary: bool,
    ) -> dict[str, bool]:
        produced = self.spec.produced(params, options)
        if requested is None:
            return dict.fromkeys(produced, binary)
        known = list(self.spec.outputs())
        selected: dict[str, bool] = {}
        for output in requested:
            if output.name not in known:
                raise Invalid.at(
                    (output.name,),
                    f"unknown output '{output.name}'; {self.spec.name} gives: {', '.join(known)}",
                    "unknown_output",
                )
            if output.name not in produced:
                needs = "grad: true" if output.name.startswith("grad_") else f"'{output.name}'"
                raise Invalid.at(
                    (output.name,),
                    f"output '{output.name}' is computed only with the parameter {needs}"
                    + ("" if output.name.startswith("grad_") else " in scores"),
                    "not_computed",
                )
            if output.name in selected:
                raise BadRequest(f"output '{output.name}' is asked for twice")
            unknown = set(output.parameters) - {"binary_data"}
            if unknown:
                raise BadRequest(
                    f"output '{output.name}' has parameter '{min(unknown)}';"
                    " outputs take binary_data"
                )
            selected[output.name] = flag(
                output.parameters.get("binary_data", binary), "binary_data"
            )
        return selected

    def encode(self, result: Result) -> Answer:
        values = {name: result.outputs[name] for name in self.outputs}
        parameters: dict[str, Any] = {"device": result.device}
        if result.divisor is not None:
            parameters["divisor"] = result.divisor
        if result.grades is not None:  # the states' settings, for POST /v1/grades/finalize
            settings = {
                k: {"metric": g.metric, "settings": g.settings} for k, g in result.grades.items()
            }
            parameters["grades"] = msgspec.json.encode(settings).decode()
        if found := warnings(values):
            parameters["warnings"] = "; ".join(found)
        outputs = [
            Output(name, DATATYPE_OF[array.dtype], array, self.outputs[name])
            for name, array in values.items()
        ]
        return Answer(self.name, self.id, parameters, outputs)


def flag(value: Any, name: str) -> bool:
    if not isinstance(value, bool):
        raise BadRequest(f"{name} must be true or false, not {msgspec.json.encode(value).decode()}")
    return value
