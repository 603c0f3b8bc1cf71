"""`python -m inference_service`: runs the app with uvicorn as the container does (settings from env)."""

from __future__ import annotations

import importlib.util

import uvicorn

from inference_service.settings import Settings


def main() -> None:
    settings = Settings()
    uvicorn.run(
        "inference_service.app:create_app",
        factory=True,
        host=settings.host,
        port=settings.port,
        workers=1,
        loop="uvloop" if importlib.util.find_spec("uvloop") else "asyncio",
        http="httptools" if importlib.util.find_spec("httptools") else "h11",
        access_log=False,  # the app writes its own JSON access log
        proxy_headers=False,
        server_header=False,
        date_header=False,
        timeout_graceful_shutdown=int(settings.shutdown_drain_seconds),
        log_config=None,
    )


if __name__ == "__main__":
    main()
