"""Dependencies for route signatures."""

from typing import Annotated

from fastapi import Depends, Request

from service.config import Settings
from service.dataplane import DataPlane
from service.engine import Engine
from service.errors import Unavailable


async def get_settings(request: Request) -> Settings:  # async: FastAPI runs a sync one in a thread
    settings: Settings = request.app.state.settings
    return settings


async def get_dataplane(request: Request) -> DataPlane:
    plane: DataPlane | None = getattr(request.app.state, "dataplane", None)
    if plane is None:
        raise Unavailable("the engine is not loaded yet", headers={"Retry-After": "1"})
    return plane


async def get_ready(request: Request) -> DataPlane:
    """The data plane, or 503 when it is not loaded or every slot has stayed busy for
    unready_after seconds (a load balancer then sends new work elsewhere)."""
    plane = await get_dataplane(request)
    settings: Settings = request.app.state.settings
    busy = plane.saturated_for()
    if busy > settings.unready_after:
        raise Unavailable(
            f"every computation slot has been busy for {busy:.0f} s", headers={"Retry-After": "1"}
        )
    return plane


async def get_engine(request: Request) -> Engine:
    return (await get_dataplane(request)).engine


SettingsDep = Annotated[Settings, Depends(get_settings)]
DataPlaneDep = Annotated[DataPlane, Depends(get_dataplane)]
EngineDep = Annotated[Engine, Depends(get_engine)]
ReadyDep = Annotated[DataPlane, Depends(get_ready)]
