"""The data plane's POST routes, found without FastAPI's matching and run without its machinery:
the front door of /v1, /v1/batch and /v2 alike.

FastAPI declares and documents every route, and serves all the others. Finding a route means
matching the path against each in turn, and running its endpoint means solving its
dependencies; for a small loss that took as long as the computation. A POST route whose
endpoint takes the request alone (it reads the data plane and the settings from the app's
state, and its path's parameters from the scope) needs neither: a fixed path is found by one
dict lookup, a template (/v2/models/{name}/infer) by its literal prefix and its pattern, and
the endpoint is called directly.
"""

from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
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


@dataclass(frozen=True)
class Routes:
    fixed: dict[str, APIRoute]
    """Fixed paths, by path."""
    templates: list[tuple[str, APIRoute]]
    """Paths with parameters, each after the literal prefix every path it takes begins with."""

    def find(self, path: str) -> tuple[APIRoute, dict[str, str]] | None:
        route = self.fixed.get(path)
        if route is not None:
            return route, {}
        for prefix, template in self.templates:
            if path.startswith(prefix) and (match := template.path_regex.match(path)):
                return template, match.groupdict()
        return None


def direct_routes(routes: Iterable[BaseRoute]) -> Routes:
    """The POST routes whose endpoint takes the request alone."""
    found = Routes({}, [])
    for route in routes:
        if not isinstance(route, APIRoute) or route.methods != {"POST"}:
            continue
        takes = route.dependant
        parameters = (takes.path_params, takes.query_params, takes.header_params, takes.body_params)
        if takes.request_param_name != "request" or takes.dependencies or any(parameters):
            continue
        if route.param_convertors:
            found.templates.append((route.path.partition("{")[0], route))
        else:
            found.fixed[route.path] = route
    return found


class Direct:
    """A pure ASGI middleware that runs a POST to one of `routes` itself: scope["route"] and
    scope["path_params"] set as the router would (the metrics label by the route), a
    ServiceError or Gone answered as the app's handlers answer them; anything else goes on to
    the app."""

    def __init__(self, app: ASGIApp, routes: Routes) -> None:
        self.app = app
        self.routes = routes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        found = self.routes.find(scope["path"]) if scope["type"] == "http" else None
        if found is None or scope["method"] != "POST":
            await self.app(scope, receive, send)
            return
        scope["route"], scope["path_params"] = found
        try:
            response = await cast(Endpoint, found[0].endpoint)(Request(scope, receive, send))
        except ServiceError as error:
            response = error.response(scope["path"])
        except Gone:
            response = gone()
        await response(scope, receive, send)
