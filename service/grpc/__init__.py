"""The Open Inference Protocol over gRPC: inference.GRPCInferenceService, grpc.health.v1 and
server reflection, on a grpc.aio server in every worker."""
