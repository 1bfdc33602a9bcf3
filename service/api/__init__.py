"""HTTP adapters over the engine; include_routers is the one place routers are attached."""

from fastapi import FastAPI

from service import metrics
from service.activations import ACTIVATIONS
from service.api import health, v1
from service.losses import REGISTRY


def include_routers(app: FastAPI) -> None:
    app.include_router(health.router)
    app.include_router(v1.build_router(REGISTRY, ACTIVATIONS))
    app.include_router(metrics.build_router())
