"""Which action a request path is, on which model and version: what the access policy decides on."""

from __future__ import annotations

from enum import StrEnum


class Action(StrEnum):
    INFER = "infer"
    JOBS = "jobs"
    METADATA = "metadata"

    # Enum hashes by a Python-level method; an action is a str equal to its value: hash it as that str
    # (the access policy's memo hashes one on every request).
    __hash__ = str.__hash__


class Request:
    """An action on a model (version None: the live one); model None: a path about no model."""

    __slots__ = ("action", "model", "version")

    def __init__(self, action: Action | None, model: str | None = None, version: str | None = None) -> None:
        self.action = action
        self.model = model
        self.version = version


OPENAPI = "/openapi.json"  # describes every served model: needs metadata on all of them
_NONE = Request(None)
_JOBS = Request(Action.JOBS)


def classify(method: str, path: str) -> Request:
    """The model-scoped action of a path (the routes of inference_service.rest), else Request(None).

    `/v2/models/{m}[/versions/{v}]/infer` and `/v1/models/{m}:predict` are infer; GETs of
    `/v2/models/{m}[/versions/{v}][/ready]` and `/v1/models/{m}` are metadata; anything under
    `/v2/models/{m}[/versions/{v}]/jobs` is jobs (the asynchronous API), and so is `/v2/jobs/...` with no
    model (a job by id: it needs a jobs grant on some model; that the job is the caller's own is the job
    API's to check). A path that names no model only
    needs an authenticated caller (the router answers it, or 404s it without naming models).
    """
    if path.startswith("/v2/models/"):
        parts = path[11:].split("/")
        name, version, rest = parts[0], None, parts[1:]
        if len(rest) >= 2 and rest[0] == "versions":
            version, rest = rest[1], rest[2:]
        if not name or version == "":
            return _NONE
        if not rest:
            return Request(Action.METADATA, name, version) if method in ("GET", "HEAD") else _NONE
        if rest == ["infer"]:
            return Request(Action.INFER, name, version)
        if rest == ["ready"]:
            return Request(Action.METADATA, name, version)
        if rest[0] == "jobs":
            return Request(Action.JOBS, name, version)
        return _NONE
    if path.startswith("/v1/models/"):
        tail = path[11:]
        if "/" in tail or not tail:
            return _NONE
        if tail.endswith(":predict"):
            return Request(Action.INFER, tail[:-8]) if tail[:-8] else _NONE
        return Request(Action.METADATA, tail)
    if path == "/v2/jobs" or path.startswith("/v2/jobs/"):
        return _JOBS  # a job by id: its model is known only to the job store
    return _NONE
