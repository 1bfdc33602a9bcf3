"""Response models: they document the wire format in OpenAPI; routes return them or bytes."""

from typing import Any

from pydantic import BaseModel, Field
from typing_extensions import TypeAliasType

from service.types import DTypeName, Reduction

TensorJSON = TypeAliasType("TensorJSON", "float | list[TensorJSON]")
"""A JSON number (0-d tensor) or nested arrays of numbers, row-major and rectangular."""
ResultJSON = TypeAliasType("ResultJSON", "float | list[ResultJSON] | None")
"""A result tensor; a non-finite value is null, and `warnings` says which."""


class Health(BaseModel):
    status: str = "ok"


class Ready(BaseModel):
    status: str = "ready"
    devices: list[str]


class Limits(BaseModel):
    max_body_bytes: int
    max_elements: int
    max_work: float
    """A request's estimated cost may be at most this; a refusal past it (413) carries the
    estimate as `work` and the limit as `max_work`, so a client can split by their ratio."""
    max_batch_items: int
    max_concurrency: int


class Info(BaseModel):
    version: str
    torch_version: str
    devices: list[str]
    default_device: str
    limits: Limits


class TensorEntry(BaseModel):
    name: str
    kind: str
    shape: str
    dtype: str
    grad: bool
    batch: int | None
    """The axis of the batch (N), along which a call may be split; null where there is none."""


class ParameterEntry(BaseModel):
    type: str
    default: Any
    required: bool
    """True for a parameter without a default (softmax's dim)."""
    description: str | None
    batch: int | None
    """For a tensor of input's shape (a weight per element): its batch axis; else null."""


class ActivationEntry(BaseModel):
    name: str
    summary: str
    reference: str
    tensors: list[TensorEntry]
    parameters: dict[str, ParameterEntry]


class LossEntry(ActivationEntry):
    reductions: list[Reduction]
    default_reduction: Reduction


class Catalogue(BaseModel):
    losses: list[LossEntry]


class ActivationCatalogue(BaseModel):
    activations: list[ActivationEntry]


class LossResponse(BaseModel):
    loss: ResultJSON
    grad: dict[str, ResultJSON] | None = None
    """Present when the request set grad: one gradient per prediction tensor, of its shape."""
    reduction: Reduction
    shape: list[int]
    dtype: DTypeName
    device: str
    divisor: float | None = None
    """For "mean" and "batchmean": what the sum was divided by (the elements, the batch, or
    for class-index targets the weight of the targets not ignored), so that the means of parts
    of a data set join exactly: sum(mean_i * divisor_i) / sum(divisor_i)."""
    warnings: list[str] | None = None
    """Present when a result holds non-finite values, written as null."""


class ActivationResponse(BaseModel):
    output: ResultJSON
    shape: list[int]
    dtype: DTypeName
    device: str
    warnings: list[str] | None = None
    """Present when the output holds non-finite values, written as null."""


class LabelQualityResponse(BaseModel):
    scores: dict[str, ResultJSON]
    """Each score asked for: one number per sample, lower meaning more likely mislabelled."""
    predicted: ResultJSON
    """The argmax class of each sample (N); with multi_label, 1 where input > 0 (N, C)."""
    dtype: DTypeName
    device: str
    warnings: list[str] | None = None
    """Present when a score holds non-finite values, written as null."""


class GradeStateEntry(BaseModel):
    merge: str
    """sum: elementwise; moments: Chan et al.'s pairwise update of means and centred moments."""


class GradeEntry(ActivationEntry):
    """A metric: what it takes, the values it gives, its state's arrays with their merges, and
    the formula from a state to its values. The entry of `grades` has none of these."""

    tasks: list[str] | None = None
    input_kinds: list[str] | None = None
    values: list[str] | None = None
    state: dict[str, GradeStateEntry] | None = None
    formula: str | None = None


class FinalizeEntry(BaseModel):
    method: str
    path: str
    summary: str
    body: str


class GradeCatalogue(BaseModel):
    grades: list[GradeEntry]
    finalize: FinalizeEntry
    """The call that merges states and finalises them."""


class GradeState(BaseModel):
    """A metric's sufficient statistics: what POST /v1/grades/finalize merges."""

    metric: str
    settings: dict[str, Any]
    """Every parameter it was computed with (num_classes filled in): states merge only where
    these are equal."""
    arrays: dict[str, TensorJSON]
    """Named float64 arrays, each merged as the catalogue's entry declares."""


class Grade(BaseModel):
    metric: str
    values: dict[str, ResultJSON]
    """The metric's values by name: numbers, or one per class with average none."""
    tables: dict[str, dict[str, ResultJSON]]
    """Its tables: per_class (precision, recall, f1, support, ...), reliability (per bin),
    roc (fpr, tpr by class and threshold), pr (precision, recall)."""
    state: GradeState


class GradeResponse(Grade):
    dtype: DTypeName
    device: str
    warnings: list[str] | None = None
    """Present when a value is undefined (no weight at all), written as null."""


class GradesResponse(BaseModel):
    grades: dict[str, Grade]
    """Each metric's grade, by the key it was asked by."""
    dtype: DTypeName
    device: str
    warnings: list[str] | None = None


class FinalizeRequest(BaseModel):
    """States by key, each a list (or one state) of the same metric and settings: the parts'
    states to merge."""

    states: dict[str, list[GradeState] | GradeState]


class FinalizeResponse(BaseModel):
    grades: dict[str, Grade]
    """Each key's states merged, and its values and tables, as POST /v1/grades answers."""
    warnings: list[str] | None = None


class BatchRequest(BaseModel):
    """Many losses in one request; each item is a loss's request body plus `loss`, its name.
    An item that is not (an object, say) gets its own error result, not the batch's."""

    items: list[Any] = Field(min_length=1)


class BatchResponse(BaseModel):
    results: list[dict[str, Any]]
    """One per item, in order: {"ok": true, ...the loss's response} or {"ok": false,
    "error": the problem document the item would have got alone}."""


class ProblemError(BaseModel):
    loc: list[str | int]
    msg: str
    type: str


class Problem(BaseModel):
    """An RFC 9457 problem document, served as application/problem+json."""

    type: str = "about:blank"
    title: str
    status: int
    detail: str
    errors: list[ProblemError] | None = None
