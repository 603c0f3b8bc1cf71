"""The REST endpoints, over the dataplane (inference_service.dataplane): the front every HTTP request enters
(front.py: request id, limits, the identity gate, metrics, access log), the inference routes it serves
straight from ASGI (inference.py), and the routed ones: health, V2 (Open Inference Protocol), V1 (KServe
predict), metrics, and the OpenAPI document (openapi.py)."""
