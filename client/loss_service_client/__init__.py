"""loss-service's Python client: arrays as a pipeline holds them (numpy, torch, pandas, pyarrow,
lists) in; losses, gradients, activations, label-quality scores and grades out, over /v2
binary tensors where the server has them and /v1 JSON otherwise, split to fit the server's
limits."""

from loss_service_client._client import AsyncClient, Client
from loss_service_client._errors import ConnectionFailed, InvalidCall, LossServiceError
from loss_service_client._grades import Grade, Grades
from loss_service_client._protocol import LossResult

__all__ = [
    "AsyncClient",
    "Client",
    "ConnectionFailed",
    "Grade",
    "Grades",
    "InvalidCall",
    "LossResult",
    "LossServiceError",
]
