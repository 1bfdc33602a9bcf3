"""Liveness and readiness."""

from fastapi import APIRouter

from service.api.deps import EngineDep
from service.api.models import Health, Ready

router = APIRouter(tags=["health"])


@router.get("/healthz")
async def healthz() -> Health:
    return Health()


@router.get("/readyz", responses={503: {"description": "The engine is not loaded yet."}})
async def readyz(engine: EngineDep) -> Ready:
    return Ready(devices=engine.devices)
