"""The grpc.aio server each worker runs beside uvicorn, on the worker's event loop, serving
inference.GRPCInferenceService, grpc.health.v1.Health and server reflection.

Workers share grpc_port by SO_REUSEPORT: each binds its own listening socket and the kernel
spreads new connections across them, where uvicorn's workers share one inherited socket
(grpc.aio cannot take a socket). With one worker the option is off, so that a port already
taken is an error at start rather than a port silently shared.

The receive limit is max_body_bytes, applied by gRPC to the inflated size of a compressed
message; the send limit is gRPC's largest, since an answer can be several times its request
(a float64 gradient of an FP16 input is 4x) and max_work bounds what is computed.
"""

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from service.auth import Keys
from service.config import Settings
from service.dataplane import DataPlane
from service.grpc.pool import POOL
from service.grpc.service import SERVICE, Health, Inference, KeyCheck
from service.metrics import Metrics

MOST = 2**31 - 1
"""gRPC's largest message (its limits are int32), tritonclient's own limit."""


class GrpcServer:
    """The started server, and its service, which turns unready when the server stops."""

    def __init__(self, server: grpc.aio.Server, inference: Inference) -> None:
        self.server, self.inference = server, inference

    async def stop(self, grace: float) -> None:
        """Turns unready (which ends the health service's Watch streams), stops taking calls,
        and waits up to `grace` seconds for the calls in flight."""
        self.inference.stopping.set()
        await self.server.stop(grace)


async def start(plane: DataPlane, settings: Settings, keys: Keys, metrics: Metrics) -> GrpcServer:
    """The server, started on settings.grpc_port of settings.host."""
    inference = Inference(plane, settings, keys, metrics)
    server = grpc.aio.server(
        interceptors=[KeyCheck(inference)],
        options=[
            ("grpc.max_receive_message_length", settings.max_body_bytes),
            ("grpc.max_send_message_length", MOST),
            ("grpc.so_reuseport", int(settings.workers > 1)),
            # HTTP/2's largest frames: grpcio joins a message from its frames' slices one by
            # one, in Python, on the event loop (4096x1000, 8 clients: 12.4 -> 13.4 and 13.9
            # requests/s, within this machine's noise)
            ("grpc.http2.max_frame_size", 16_777_215),
        ],
    )
    health = Health(inference)
    server.add_generic_rpc_handlers((inference.handler(),))
    health_pb2_grpc.add_HealthServicer_to_server(health, server)
    names = (SERVICE, health_pb2.DESCRIPTOR.services_by_name["Health"].full_name)
    reflection.enable_server_reflection((*names, reflection.SERVICE_NAME), server, pool=POOL)
    host = f"[{settings.host}]" if ":" in settings.host else settings.host
    server.add_insecure_port(f"{host}:{settings.grpc_port}")
    await server.start()
    return GrpcServer(server, inference)
