"""The data plane's POST routes, found by one dict lookup and run without FastAPI's machinery.

FastAPI declares and documents every route, and serves all the others. Finding a route means
matching the path against each in turn, and running its endpoint means solving its
dependencies; for a small loss that took as long as the computation. A POST route at a fixed
path whose endpoint takes the request alone (it reads the data plane and the settings from
the app's state) needs neither: it is called here directly, with the same endpoint function.
"""

from collections.abc import Awaitable, Callable, Iterable
from typing import cast

from fastapi.routing import APIRoute
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute
from starlette.types import ASGIApp, Receive, Scope, Send

from service.api.body import gone
from service.dataplane import Gone
from service.errors import ServiceError

Endpoint = Callable[[Request], Awaitable[Response]]


def direct_routes(routes: Iterable[BaseRoute]) -> dict[str, APIRoute]:
    """The POST routes at fixed paths whose endpoint takes the request alone, by path."""
    found = {}
    for route in routes:
        if not isinstance(route, APIRoute) or route.methods != {"POST"}:
            continue
        takes = route.dependant
        parameters = (takes.path_params, takes.query_params, takes.header_params, takes.body_params)
        if takes.request_param_name == "request" and not takes.dependencies and not any(parameters):
            found[route.path] = route
    return found


class Direct:
    """A pure ASGI middleware that runs a POST to one of `routes` itself: scope["route"] set
    as the router would (the metrics label by it), a ServiceError or Gone answered as the
    app's handlers answer them; anything else goes on to the app."""

    def __init__(self, app: ASGIApp, routes: dict[str, APIRoute]) -> None:
        self.app = app
        self.routes = routes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        route = self.routes.get(scope["path"]) if scope["type"] == "http" else None
        if route is None or scope["method"] != "POST":
            await self.app(scope, receive, send)
            return
        scope["route"] = route
        try:
            response = await cast(Endpoint, route.endpoint)(Request(scope, receive, send))
        except ServiceError as error:
            response = error.response(scope["path"])
        except Gone:
            response = gone()
        await response(scope, receive, send)
