"""The ONNX inference service (FastAPI + onnxruntime + Redis cache)."""
