"""inference.GRPCInferenceService over the worker's data plane, and grpc.health.v1.Health.

Each call is handled as REST's: an API key from `authorization: Bearer` metadata where keys
are set, checked before the message is read (KeyCheck; the health and liveness calls are
open), an id (x-request-id metadata, echoed in the
trailing metadata, or a new one), a count and a latency in the metrics with protocol "grpc",
and one access line. A ServiceError becomes its status code (CODES) with the same words; an
unexpected exception is logged with its trace and answered INTERNAL naming the request id.

ModelInfer takes the request's bytes: a message over INLINE_BYTES is parsed in a worker
thread, as a REST body is decoded, and the data plane then decodes, computes and encodes it
in a slot.
"""

import asyncio
import contextlib
import logging
import secrets
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, Final

import grpc
from google.protobuf.message import Message
from grpc_health.v1 import health_pb2, health_pb2_grpc

from service import __version__
from service.auth import Keys
from service.config import Settings
from service.dataplane import INLINE_BYTES, DataPlane, Gone, Request
from service.errors import ServiceError
from service.grpc import messages
from service.grpc import open_inference_grpc_pb2 as pb
from service.kinds import MODELS
from service.metrics import REQUEST_ID, Metrics, log
from service.protocol.exchange import EXTENSIONS, Exchange, lookup, metadata

SERVICE: Final = "inference.GRPCInferenceService"
CODES: Final = {
    400: grpc.StatusCode.INVALID_ARGUMENT,
    401: grpc.StatusCode.UNAUTHENTICATED,
    404: grpc.StatusCode.NOT_FOUND,
    408: grpc.StatusCode.DEADLINE_EXCEEDED,
    413: grpc.StatusCode.RESOURCE_EXHAUSTED,
    415: grpc.StatusCode.INVALID_ARGUMENT,
    422: grpc.StatusCode.INVALID_ARGUMENT,
    501: grpc.StatusCode.UNIMPLEMENTED,
    503: grpc.StatusCode.UNAVAILABLE,
}
"""The gRPC status of each HTTP status a ServiceError has."""
PUSHBACK_MS: Final = "1000"
"""grpc-retry-pushback-ms on UNAVAILABLE (gRFC A6): when to retry, as REST's Retry-After: 1."""
OPEN: Final = frozenset({"ServerLive", "ServerReady"})
"""Calls that never need a key, as /v2/health/ on REST."""
SEND_KEY: Final = "authorization: Bearer KEY metadata (its name in lowercase, as gRPC requires)"
"""How to send a key, in the refusal of a call without one."""
log_errors = logging.getLogger("loss_service.error")

Context = grpc.aio.ServicerContext[Any, Any]
Handler = Callable[[Any, Context], Awaitable[Any]]


class Call:
    """What a handler learns of its call for the metrics: the model it names."""

    __slots__ = ("model",)

    def __init__(self) -> None:
        self.model = ""


Method = Callable[[Any, Context, Call], Awaitable[Any]]


class Inference:
    """The six calls of inference.GRPCInferenceService."""

    def __init__(self, plane: DataPlane, settings: Settings, keys: Keys, metrics: Metrics) -> None:
        self.plane, self.settings, self.keys, self.metrics = plane, settings, keys, metrics
        self.stopping = asyncio.Event()
        """Set when the server begins to stop: not ready from then on."""

    def refused(self, name: str, refusal: ServiceError) -> "grpc.RpcMethodHandler[Any, Any]":
        """A handler that answers `refusal` without reading the request: one that takes a
        stream, which it never reads (the wire is the same for a unary call), so that a large
        message is refused as soon as its metadata arrives."""

        async def refuse(requests: Any, context: Context, call: Call) -> None:
            raise refusal

        return grpc.stream_unary_rpc_method_handler(
            self._observed(name, refuse), response_serializer=_serialize
        )

    def handler(self) -> grpc.GenericRpcHandler:
        """The service's methods: ModelInfer takes and gives bytes (it parses and serializes
        where their size says), the others their messages."""
        calls: dict[str, tuple[Method, Any]] = {
            "ServerLive": (self.server_live, pb.ServerLiveRequest),
            "ServerReady": (self.server_ready, pb.ServerReadyRequest),
            "ModelReady": (self.model_ready, pb.ModelReadyRequest),
            "ServerMetadata": (self.server_metadata, pb.ServerMetadataRequest),
            "ModelMetadata": (self.model_metadata, pb.ModelMetadataRequest),
            "ModelInfer": (self.model_infer, None),
        }
        handlers = {
            name: grpc.unary_unary_rpc_method_handler(
                self._observed(name, call),
                request_deserializer=None if message is None else message.FromString,
                response_serializer=None if message is None else _serialize,
            )
            for name, (call, message) in calls.items()
        }
        return grpc.method_handlers_generic_handler(SERVICE, handlers)

    async def server_live(self, request: Any, context: Any, call: Call) -> pb.ServerLiveResponse:
        return pb.ServerLiveResponse(live=True)

    async def server_ready(self, request: Any, context: Any, call: Call) -> pb.ServerReadyResponse:
        return pb.ServerReadyResponse(ready=self.ready())

    def ready(self) -> bool:
        """As /readyz: not while every slot has been busy for unready_after seconds, nor once
        the server is stopping."""
        busy = self.plane.saturated_for() > self.settings.unready_after
        return not busy and not self.stopping.is_set()

    async def model_ready(
        self, request: pb.ModelReadyRequest, context: Any, call: Call
    ) -> pb.ModelReadyResponse:
        call.model = request.name
        lookup(request.name, request.version)
        return pb.ModelReadyResponse(ready=True)

    async def server_metadata(
        self, request: Any, context: Any, call: Call
    ) -> pb.ServerMetadataResponse:
        return pb.ServerMetadataResponse(
            name="loss-service", version=__version__, extensions=EXTENSIONS
        )

    async def model_metadata(
        self, request: pb.ModelMetadataRequest, context: Any, call: Call
    ) -> pb.ModelMetadataResponse:
        call.model = request.name
        _, spec = lookup(request.name, request.version)
        return messages.model_metadata(metadata(spec))

    async def model_infer(self, body: bytes, context: Context, call: Call) -> bytes:
        left = _left(context)
        received = await self.plane.place(
            lambda: messages.parse(body), inline=len(body) <= INLINE_BYTES, left=left
        )
        name = call.model = received.message.model_name
        kind, spec = lookup(name, received.message.model_version)
        exchange = Exchange(kind, spec, name, binary=True)
        max_elements = self.settings.max_elements

        def decode() -> Request:
            request = exchange.decode(messages.inference(received), max_elements)
            messages.one_way(exchange.outputs)
            return request

        return await self.plane.run(
            kind,
            spec,
            decode,
            lambda request, result: messages.response(exchange.encode(result)),
            size=len(body),
            left=left,
        )

    def _observed(self, name: str, method: Method) -> Handler:
        """`method` with an id, its metrics and access line, and errors as statuses."""
        route = f"/{SERVICE}/{name}"

        async def observed(request: Any, context: Context) -> Any:
            start, call, answer = time.perf_counter(), Call(), None
            given = dict(context.invocation_metadata() or ())
            request_id = given.get("x-request-id")
            if not (isinstance(request_id, str) and REQUEST_ID.fullmatch(request_id)):
                request_id = secrets.token_hex(16)
            trailing: list[tuple[str, str]] = [("x-request-id", request_id)]
            code = grpc.StatusCode.OK
            try:
                answer = await method(request, context, call)
                context.set_trailing_metadata(trailing)
                return answer
            except ServiceError as error:
                code = CODES.get(error.status, grpc.StatusCode.INTERNAL)
                if code == grpc.StatusCode.UNAVAILABLE:
                    trailing.append(("grpc-retry-pushback-ms", PUSHBACK_MS))
                await context.abort(code, _clip(error.detail), tuple(trailing))
            except (Gone, asyncio.CancelledError):  # the client went away
                code = grpc.StatusCode.CANCELLED
                raise asyncio.CancelledError from None
            except Exception:
                code = grpc.StatusCode.INTERNAL
                log_errors.exception("unexpected error in request %s", request_id)
                detail = f"an unexpected error; it is logged with request id {request_id}"
                await context.abort(code, detail, tuple(trailing))
            finally:
                seconds = time.perf_counter() - start
                loss = call.model if call.model in MODELS else ""
                labels = ("grpc", "POST", route, loss, code.name)
                self.metrics.record(labels, seconds)
                sizes = (_size(request), _size(answer))
                log(request_id, "POST", labels, seconds, *sizes, self.settings.log_format)

        return observed


MOST_DETAIL: Final = 4096
"""The most characters of a refusal's words: they travel in a trailer, and clients take 16 KiB
of metadata at most; a detail that names a client's 20 KB model name would not arrive."""


def _clip(detail: str) -> str:
    return detail if len(detail) <= MOST_DETAIL else detail[: MOST_DETAIL - 3] + "..."


def _size(message: Any) -> int:
    """A message's bytes on the wire (0 for none, or for a stream never read)."""
    if isinstance(message, bytes):
        return len(message)
    return int(message.ByteSize()) if isinstance(message, Message) else 0


def _serialize(message: Any) -> bytes:
    serialized: bytes = message.SerializeToString()
    return serialized


def _left(context: Context) -> Callable[[], Awaitable[None]]:
    """The data plane's `left`: returns once the call is over (the client cancelled it, or
    its deadline passed)."""
    done = asyncio.Event()
    # typeshed's _DoneCallback is a class, where grpc takes any callable
    context.add_done_callback(lambda _: done.set())  # type: ignore[arg-type]

    async def left() -> None:
        await done.wait()

    return left


class KeyCheck(grpc.aio.ServerInterceptor):
    """API keys, checked on the call's metadata before its message is read: a call of the
    inference service without a key it knows is UNAUTHENTICATED at once, however large its
    message (ServerLive, ServerReady, health and reflection stay open)."""

    def __init__(self, inference: Inference) -> None:
        self.inference = inference

    async def intercept_service(
        self,
        continuation: Callable[
            [grpc.HandlerCallDetails], Awaitable["grpc.RpcMethodHandler[Any, Any] | None"]
        ],
        details: grpc.HandlerCallDetails,
    ) -> "grpc.RpcMethodHandler[Any, Any] | None":
        service, _, name = details.method.removeprefix("/").partition("/")
        if service == SERVICE and name not in OPEN and self.inference.keys.required:
            given = dict(details.invocation_metadata or ())
            authorization = given.get("authorization")
            header = authorization.encode() if isinstance(authorization, str) else None
            refusal = self.inference.keys.refusal(header, SEND_KEY)
            if refusal is not None:
                return self.inference.refused(name, refusal)
        return await continuation(details)


class Health(health_pb2_grpc.HealthServicer):
    """grpc.health.v1.Health for the server ("") and the inference service: SERVING while the
    server is ready (as /readyz), NOT_SERVING while every slot has stayed busy, and from the
    moment the server begins to stop, when every Watch ends (an open one would hold the stop
    up for its whole grace period)."""

    NAMES: Final = ("", SERVICE)

    def __init__(self, inference: Inference) -> None:
        self.inference = inference

    def _status(self, service: str) -> Any:
        if service not in self.NAMES:
            return None
        return health_pb2.HealthCheckResponse.SERVING if self.inference.ready() else _NOT_SERVING

    async def Check(
        self, request: health_pb2.HealthCheckRequest, context: Any
    ) -> health_pb2.HealthCheckResponse:
        status = self._status(request.service)
        if status is None:
            await context.abort(grpc.StatusCode.NOT_FOUND, f"unknown service '{request.service}'")
        return health_pb2.HealthCheckResponse(status=status)

    async def Watch(
        self, request: health_pb2.HealthCheckRequest, context: Any
    ) -> AsyncIterator[health_pb2.HealthCheckResponse]:
        """The status now, then each change (looked at every WATCH_SECONDS), until the server
        stops: NOT_SERVING, then the end of the stream."""
        last = None
        while True:
            status = self._status(request.service)
            if status is None:
                status = health_pb2.HealthCheckResponse.SERVICE_UNKNOWN
            if status != last:
                yield health_pb2.HealthCheckResponse(status=status)
                last = status
            if self.inference.stopping.is_set():
                return
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.inference.stopping.wait(), WATCH_SECONDS)


WATCH_SECONDS: Final = 1.0
_NOT_SERVING: Final = health_pb2.HealthCheckResponse.NOT_SERVING
