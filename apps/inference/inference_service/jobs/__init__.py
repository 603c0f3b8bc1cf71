"""Asynchronous inference: jobs queued on a Redis stream, run by workers.

`python -m inference_service.jobs.worker` runs a worker (the same image and settings as the service).

- store.py    JobStore: the job hashes, the stream and its consumer group, the dead-letter stream
- routes.py   POST /v2/models/{name}[/versions/{v}]/jobs, GET /v2/jobs/{id}
- worker.py   the worker: XREADGROUP + XAUTOCLAIM, jobs run concurrently through the models' batchers
- local.py    a persistent (AOF, noeviction) redis-server for tests and `make serve`
"""
