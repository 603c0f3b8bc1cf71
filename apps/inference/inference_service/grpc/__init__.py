"""The Open Inference Protocol over gRPC (`inference.GRPCInferenceService`) and `grpc.health.v1`, served by
grpcio's asyncio server on the REST app's event loop (server.py), through the REST path's own gate, quotas,
caches, batcher, metrics and access log (dataplane.py).

The protobuf modules are generated from inference.proto by grpcio-tools (stubs.py: `make setup` and the
image build run it); they are never committed. Importing this package imports none of them.
"""
