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


async def get_engine(request: Request) -> Engine:
    return (await get_dataplane(request)).engine


SettingsDep = Annotated[Settings, Depends(get_settings)]
DataPlaneDep = Annotated[DataPlane, Depends(get_dataplane)]
EngineDep = Annotated[Engine, Depends(get_engine)]
