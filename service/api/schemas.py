"""Per-loss request models, for OpenAPI only: requests are decoded by api.requests."""

from functools import cache
from typing import Any

from pydantic import BaseModel, Field, create_model

from service.api.models import TensorJSON
from service.spec import Spec, camel


@cache
def request_model(spec: Spec) -> type[BaseModel]:
    """{tensors..., tensor parameters..., parameters..., reduction, grad, dtype, device}."""
    tensors: dict[str, Any] = {
        t.name: (TensorJSON, Field(description=f"{t.kind}, shape {t.shape}")) for t in spec.tensors
    }
    tensor_params: dict[str, Any] = {
        p.name: (TensorJSON | None, Field(default=None, description=p.description))
        for p in spec.tensor_params
    }
    return create_model(
        f"{camel(spec.name)}Request",
        __base__=(spec.options, spec.params),
        __doc__=spec.summary,
        **tensors,
        **tensor_params,
    )
