"""Read and validate the spec files.

Every problem names the file, the field, the bad value and what is allowed.
"""

from __future__ import annotations

import typing
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ValidationError

from mlplatform.spec.errors import SpecError
from mlplatform.spec.overlay import GatewayRouting, Overlay
from mlplatform.spec.platform import Platform

OVERLAYS_DIR = "overlays"
PLATFORM_FILE = "platform.yaml"

M = TypeVar("M", bound=BaseModel)


@dataclass(frozen=True)
class Environment:
    """One environment: the shared platform spec plus that environment's overlay."""

    name: str
    platform: Platform
    overlay: Overlay

    @property
    def namespace(self) -> str:
        return self.overlay.namespace


def list_environments(repo_root: Path) -> list[str]:
    """Every `overlays/*.yaml` except platform.yaml, sorted."""
    folder = repo_root / OVERLAYS_DIR
    return sorted(p.stem for p in folder.glob("*.yaml") if p.name != PLATFORM_FILE)


def load_platform(repo_root: Path) -> Platform:
    return _load(repo_root / OVERLAYS_DIR / PLATFORM_FILE, Platform)


def load_environment(env: str, *, repo_root: Path, platform: Platform | None = None) -> Environment:
    """Load and cross-check one environment. Raises SpecError."""
    path = repo_root / OVERLAYS_DIR / f"{env}.yaml"
    if env == Path(PLATFORM_FILE).stem or not path.is_file():
        raise SpecError(path, [f"no such environment {env!r}; allowed: {list_environments(repo_root)}"])
    platform = platform if platform is not None else load_platform(repo_root)
    overlay = _load(path, Overlay)
    problems = _cross_check(platform, overlay)
    if problems:
        raise SpecError(path, problems)
    return Environment(name=env, platform=platform, overlay=overlay)


def _cross_check(platform: Platform, overlay: Overlay) -> list[str]:
    problems = []
    declared = sorted(platform.services)
    for name in sorted(set(overlay.services) - set(platform.services)):
        problems.append(
            f"services.{name}: service {name!r} is not declared in {PLATFORM_FILE}; allowed: {declared}"
        )
    for name in sorted(set(platform.services) - set(overlay.services)):
        problems.append(f"services.{name}: missing; every service of {PLATFORM_FILE} needs an entry here")
    for name, svc in sorted(overlay.services.items()):
        if svc.canary is not None and not isinstance(overlay.routing, GatewayRouting):
            problems.append(
                f"services.{name}.canary: weighted canary traffic needs routing.kind 'Gateway'; "
                f"got routing.kind {overlay.routing.kind!r}"
            )
        if svc.gpu is not None and overlay.quota.requests_gpu < svc.gpu.count:
            problems.append(
                f"services.{name}.gpu.count: {svc.gpu.count} exceeds quota.requestsGpu "
                f"({overlay.quota.requests_gpu})"
            )
    for name in sorted(set(overlay.peers) - set(platform.peers)):
        problems.append(f"peers.{name}: not a peer of {PLATFORM_FILE}; allowed: {sorted(platform.peers)}")
    hosts = [(s.host, s.path) for s in overlay.services.values()]
    for host, path in sorted({h for h in hosts if hosts.count(h) > 1}):
        problems.append(f"services: host {host!r} path {path!r} is used by more than one service")
    return problems


def _load(path: Path, model: type[M]) -> M:
    try:
        raw = yaml.load(path.read_text(encoding="utf-8"), Loader=yaml.CSafeLoader)
    except FileNotFoundError:
        raise SpecError(path, ["file not found"]) from None
    except yaml.YAMLError as exc:
        raise SpecError(path, [f"not valid YAML: {exc}"]) from None
    if not isinstance(raw, dict):
        raise SpecError(path, [f"the top level must be a mapping; got {type(raw).__name__}"])
    try:
        return model.model_validate(raw)
    except ValidationError as exc:
        raise SpecError(path, [_describe(model, err) for err in exc.errors()]) from None


def _describe(model: type[BaseModel], err: Any) -> str:
    loc = _format_loc(err["loc"])
    kind = err["type"]
    if kind == "extra_forbidden":
        allowed = _fields_at(model, err["loc"][:-1])
        return f"{loc}: unknown field; allowed fields here: {allowed}"
    if kind == "missing":
        return f"{loc}: required field is missing"
    msg = err["msg"]
    if msg.startswith("Value error, "):
        msg = msg[len("Value error, ") :]
    where = f"{loc}: " if loc else ""
    return f"{where}{msg}; got {err['input']!r}"


def _format_loc(loc: tuple[Any, ...]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out


def _fields_at(model: type[BaseModel], loc: tuple[Any, ...]) -> list[str]:
    """The YAML field names allowed at `loc` (walks models, dicts, lists and tagged unions)."""
    current: Any = model
    for part in loc:
        current = _step(current, part)
        if current is None:
            return []
    if isinstance(current, type) and issubclass(current, BaseModel):
        return sorted(f.alias or n for n, f in current.model_fields.items())
    return []


def _step(tp: Any, part: Any) -> Any:
    tp = _unwrap(tp)
    if isinstance(tp, type) and issubclass(tp, BaseModel):
        for name, field in tp.model_fields.items():
            if (field.alias or name) == part:
                return field.annotation
        return None
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if origin in (list, tuple) and isinstance(part, int):
        return args[0]
    if origin is dict:
        return args[1]
    if args:  # a union: tagged unions report the tag as the location part
        for arg in args:
            arg = _unwrap(arg)
            if isinstance(arg, type) and issubclass(arg, BaseModel):
                for name, field in arg.model_fields.items():
                    if name in ("kind", "source") and part in typing.get_args(field.annotation):
                        return arg
        for arg in args:
            if arg is not type(None):
                return _step(arg, part)
    return None


def _unwrap(tp: Any) -> Any:
    while typing.get_origin(tp) is typing.Annotated:
        tp = typing.get_args(tp)[0]
    args = typing.get_args(tp)
    if args and type(None) in args and len(args) == 2:
        return next(a for a in args if a is not type(None))
    return tp
