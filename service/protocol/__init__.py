"""The Open Inference Protocol, without a transport: its objects (structs), its tensors and
datatypes (tensors), and one inference's request and response logic (exchange). /v2 over REST
(service.api.oip) and over gRPC (service.grpc) are thin adapters over it and the data plane."""
