"""The ONNX inference service (FastAPI + onnxruntime + Redis cache).

App factory: `inference_service.app:create_app` (run with `python -m inference_service`, or
`uvicorn inference_service.app:create_app --factory`). Settings: `inference_service.settings.Settings`.
"""

__version__ = "0.1.0"
