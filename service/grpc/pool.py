"""The service's own protobuf descriptor pool.

The Protocol's messages are registered here rather than in protobuf's default pool, where
tritonclient.grpc (and KServe's and MLServer's packages) register the same names from their
own copies of the proto: two copies in one pool fail on import ("duplicate symbol"). Server
reflection reads this pool, so the health and reflection services' files are added to it.
"""

from google.protobuf import descriptor_pool
from grpc_health.v1 import health_pb2
from grpc_reflection.v1alpha import reflection_pb2

POOL = descriptor_pool.DescriptorPool()
for _module in (health_pb2, reflection_pb2):
    POOL.AddSerializedFile(_module.DESCRIPTOR.serialized_pb)  # type: ignore[no-untyped-call]
