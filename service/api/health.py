"""Liveness and readiness."""

from fastapi import APIRouter

from service.api.deps import ReadyDep
from service.api.models import Health, Ready

router = APIRouter(tags=["health"])


@router.get("/healthz")
async def healthz() -> Health:
    return Health()


@router.get(
    "/readyz",
    responses={
        503: {
            "description": "The engine is not loaded yet, or every computation slot has been"
            " busy for unready_after seconds."
        }
    },
)
async def readyz(plane: ReadyDep) -> Ready:
    return Ready(devices=plane.engine.devices)
