"""`python -m inference_service`: runs the app with uvicorn as the container does (settings from env)."""

from __future__ import annotations

import importlib.util
import sys

import uvicorn

from inference_service.connections import GuardedHttpToolsProtocol
from inference_service.settings import Settings


def main() -> None:
    settings = Settings()
    # The event loop and the model threads share the GIL; the default 5 ms switch interval shows up as
    # tail latency when a finished batch waits to hand its results back to a busy loop.
    sys.setswitchinterval(0.0005)
    uvicorn.run(
        "inference_service.app:create_app",
        factory=True,
        host=settings.host,
        port=settings.port,
        workers=settings.workers,
        loop="uvloop" if importlib.util.find_spec("uvloop") else "asyncio",
        # httptools with a header deadline and size limit (inference_service.connections); h11 as a fallback
        # has its own header size limit (h11_max_incomplete_event_size) and no deadline.
        http=GuardedHttpToolsProtocol if importlib.util.find_spec("httptools") else "h11",
        h11_max_incomplete_event_size=settings.max_header_bytes,
        timeout_keep_alive=int(max(1, settings.idle_timeout_seconds)),
        access_log=False,  # the app writes its own JSON access log
        proxy_headers=False,
        server_header=False,
        date_header=False,
        timeout_graceful_shutdown=int(settings.shutdown_drain_seconds),
        log_config=None,
    )


if __name__ == "__main__":
    main()
