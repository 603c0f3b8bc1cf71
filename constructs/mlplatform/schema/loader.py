"""Read and validate the spec files.

Every problem is one line: `file:line: field.path: what was wrong; allowed: what is allowed`. `load_all` reads
every file before it fails, so one run reports every broken file.
"""

from __future__ import annotations

import copy
import dataclasses
import difflib
import typing
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from mlplatform.schema import checks, identity, signing
from mlplatform.schema.catalog import CATALOG_FILE, Catalog, ImageSource, RemoteSource
from mlplatform.schema.common import ALLOWED_BY_PATTERN
from mlplatform.schema.errors import (
    MAX_LINE,
    FieldPath,
    FieldProblems,
    Problem,
    SpecError,
    choices,
    did_you_mean,
    short,
)
from mlplatform.schema.overlay import Overlay
from mlplatform.schema.platform import Model, Platform
from mlplatform.schema.source import Source, read

OVERLAYS_DIR = "overlays"
PLATFORM_FILE = checks.PLATFORM_FILE
OVERLAY_SUFFIX = ".yaml"
#: Spellings of YAML files that are refused rather than skipped (one spelling: `dev.yml` next to `dev.yaml`
#: would be two files for one environment, and a skipped file is an environment that silently never deploys).
REFUSED_SUFFIXES = (".yml",)

M = TypeVar("M", bound=BaseModel)


@dataclass(frozen=True)
class Environment:
    """One environment on one cluster: the shared platform spec plus that environment's overlay (as the
    cluster runs it, where the overlay places the environment on several clusters)."""

    name: str
    platform: Platform
    overlay: Overlay
    #: The model catalog (where each model version comes from); empty where a caller built the environment
    #: by hand: every model is then inside the image.
    catalog: Catalog = field(default_factory=lambda: Catalog(models={}))
    #: Files the overlay names under overlays/ (a JWKS ConfigMap's `file`): path -> canonical content.
    files: dict[str, str] = field(default_factory=dict)
    #: The cluster's name (a key of the overlay's `clusters`); None: the environment's one `cluster`.
    cluster: str | None = None
    region: str | None = None

    @property
    def namespace(self) -> str:
        return self.overlay.namespace

    @property
    def folder(self) -> str:
        """Its folder under dist/: <env>, or <env>/<cluster> for one of several clusters."""
        return self.name if self.cluster is None else f"{self.name}/{self.cluster}"

    @property
    def server(self) -> str:
        """The cluster's API server (Argo CD's destination)."""
        if self.overlay.cluster is None:
            raise ValueError(f"{self.folder}: an overlay of several clusters, not one of them")
        return self.overlay.cluster.server

    def serves_grpc(self, service: str) -> bool:
        """Whether the service's pods serve gRPC here: its `grpc` is on and the runtime is `deployment`."""
        spec = self.platform.services.get(service)
        return spec is not None and spec.grpc and self.overlay.runtime == "deployment"

    def remote_sources(self, models: Sequence[Model]) -> list[tuple[Model, RemoteSource]]:
        """The models an init container must fetch (every source but `image`), in the given order."""
        found: list[tuple[Model, RemoteSource]] = []
        for model in models:
            if self.catalog.has(model.name, model.version):
                source = self.catalog.entry(model.name, model.version).source
                if not isinstance(source, ImageSource):
                    found.append((model, source))
        return found


def list_environments(repo_root: Path) -> list[str]:
    """Every `overlays/*.yaml` except platform.yaml, sorted."""
    folder = repo_root / OVERLAYS_DIR
    return sorted(p.stem for p in folder.glob(f"*{OVERLAY_SUFFIX}") if p.name != PLATFORM_FILE)


def load_platform(repo_root: Path) -> Platform:
    """platform.yaml, validated and checked against the model catalog. Raises SpecError."""
    problems: list[Problem] = []
    platform = _platform(repo_root, _catalog(repo_root, problems), problems)
    if platform is None or problems:
        raise SpecError(problems)
    return platform


def load_environment(env: str, *, repo_root: Path, platform: Platform | None = None) -> Environment:
    """Load and cross-check one environment. Raises SpecError."""
    path = repo_root / OVERLAYS_DIR / f"{env}{OVERLAY_SUFFIX}"
    if env == Path(PLATFORM_FILE).stem or not path.is_file():
        shown = f"{OVERLAYS_DIR}/{env}{OVERLAY_SUFFIX}"
        known = list_environments(repo_root)
        msg = f"no such environment {env!r}{did_you_mean(env, known)}; allowed: {choices(known)}"
        raise SpecError([Problem(shown, 1, "", msg)])
    problems: list[Problem] = []
    catalog = _catalog(repo_root, problems)
    platform = platform if platform is not None else _platform(repo_root, catalog, problems)
    loaded = _environment(repo_root, env, platform, catalog, problems)
    if problems or loaded.overlay is None or platform is None or catalog is None:
        raise SpecError(problems)
    files = _files(repo_root, loaded, [])  # its problems are in `problems` already
    placed = _placed(env, platform, loaded.overlay, catalog, files)
    if len(placed) != 1:
        shown = f"{OVERLAYS_DIR}/{env}{OVERLAY_SUFFIX}"
        msg = f"runs on {len(placed)} clusters; allowed here: an environment on one cluster (use load_all)"
        raise SpecError([Problem(shown, 1, "clusters", msg)])
    return placed[0]


def load_all(
    repo_root: Path,
    *,
    switched: Mapping[str, Mapping[FieldPath, Any]] | None = None,
    sources: dict[str, Source] | None = None,
) -> list[Environment]:
    """Every environment, validated together: every file, then the environments against each other.

    `switched`: environment -> field path -> value, set in that overlay as if written there (the Helm chart
    renders each environment with its feature switches flipped; mlplatform.synth.render_switched).
    `sources`: files already parsed (path -> Source), for callers that load the same files several times;
    files parsed here are added.
    Raises one SpecError with every problem of every file.
    """
    problems: list[Problem] = _stray_files(repo_root)
    catalog = _catalog(repo_root, problems, sources)
    platform = _platform(repo_root, catalog, problems, sources)
    loaded = [
        _environment(repo_root, env, platform, catalog, problems, (switched or {}).get(env, {}), sources)
        for env in list_environments(repo_root)
    ]
    problems += checks.across_environments(loaded)
    if not loaded:
        problems.append(
            Problem(OVERLAYS_DIR, 1, "", f"no environment; allowed: one overlays/<env>{OVERLAY_SUFFIX}")
        )
    if problems or platform is None or catalog is None:
        raise SpecError(problems)
    return [
        placed
        for i in loaded
        if i.overlay
        for placed in _placed(i.env, platform, i.overlay, catalog, _files(repo_root, i, []))
    ]


def _placed(
    env: str, platform: Platform, overlay: Overlay, catalog: Catalog, files: dict[str, str]
) -> list[Environment]:
    """The environment on each of its clusters (one, unless the overlay lists several), by cluster name."""
    if overlay.clusters is None:
        return [Environment(name=env, platform=platform, overlay=overlay, catalog=catalog, files=files)]
    placements = overlay.placements()
    return [
        Environment(
            name=env,
            platform=platform,
            overlay=placements[cluster],
            catalog=catalog,
            files=files,
            cluster=cluster,
            region=overlay.clusters[cluster].region,
        )
        for cluster in sorted(placements)
    ]


def _stray_files(repo_root: Path) -> list[Problem]:
    problems = []
    folder = repo_root / OVERLAYS_DIR
    for path in sorted(folder.iterdir()) if folder.is_dir() else []:
        if path.suffix.lower() in (OVERLAY_SUFFIX, *REFUSED_SUFFIXES) and path.suffix != OVERLAY_SUFFIX:
            shown = f"{OVERLAYS_DIR}/{path.name}"
            msg = f"overlay files are named <env>{OVERLAY_SUFFIX}; allowed: {path.stem}{OVERLAY_SUFFIX}"
            problems.append(Problem(shown, 1, "", msg))
            problems += checks.environment_name(path.stem, shown, None)
    return problems


def _platform(
    repo_root: Path,
    catalog: Catalog | None,
    problems: list[Problem],
    sources: dict[str, Source] | None = None,
) -> Platform | None:
    source = _read(repo_root, f"{OVERLAYS_DIR}/{PLATFORM_FILE}", sources)
    platform = _validate(source, Platform, problems)
    if platform is not None and catalog is not None:
        problems += checks.platform_models(platform, source, catalog)
    if platform is not None:
        try:
            signing.public_key_pem(repo_root, platform.image_signing.public_key)
        except ValueError as err:
            got = short(platform.image_signing.public_key)
            problems.append(source.problem(("imageSigning", "publicKey"), f"got {got}; {err}"))
    return platform


def _catalog(
    repo_root: Path, problems: list[Problem], sources: dict[str, Source] | None = None
) -> Catalog | None:
    if not (repo_root / CATALOG_FILE).is_file():
        problems.append(
            Problem(CATALOG_FILE, 1, "", "missing: the model build writes it; allowed: run `make models`")
        )
        return None
    return _validate(_read(repo_root, CATALOG_FILE, sources), Catalog, problems)


def _environment(
    repo_root: Path,
    env: str,
    platform: Platform | None,
    catalog: Catalog | None,
    problems: list[Problem],
    switched: Mapping[FieldPath, Any] | None = None,
    sources: dict[str, Source] | None = None,
) -> checks.Loaded:
    source = _read(repo_root, f"{OVERLAYS_DIR}/{env}{OVERLAY_SUFFIX}", sources)
    if switched and isinstance(source.data, dict):
        source.data = _with_fields(source.data, switched)
        for path in switched:  # a field not written in the file is shown at its closest written parent
            for depth in range(1, len(path) + 1):
                source.lines.setdefault(path[:depth], source.line_of(path[: depth - 1]))
    problems += checks.environment_name(env, source.file, platform)
    overlay = _validate(source, Overlay, problems)
    if overlay is not None:
        problems += checks.cluster_names(env, overlay, source, platform)
    if overlay is not None and platform is not None:
        problems += checks.overlay_against_platform(platform, overlay, source)
    if overlay is not None and catalog is not None:
        problems += checks.overlay_models(overlay, source, catalog)
    loaded = checks.Loaded(env=env, source=source, overlay=overlay)
    _files(repo_root, loaded, problems)
    return loaded


def _with_fields(data: dict[Any, Any], fields: Mapping[FieldPath, Any]) -> dict[Any, Any]:
    """A copy of a file's data with each field path set to its value (missing mappings on the way added)."""
    data = copy.deepcopy(data)
    for path, value in fields.items():
        node = data
        for part in path[:-1]:
            child = node.get(part)
            if not isinstance(child, dict):
                child = node[part] = {}
            node = child
        node[path[-1]] = value
    return data


def _files(repo_root: Path, loaded: checks.Loaded, problems: list[Problem]) -> dict[str, str]:
    """The files under overlays/ that the overlay names (JWKS ConfigMaps); their problems are added."""
    if loaded.overlay is None:
        return {}
    files, found = identity.services_jwks_files(repo_root, dict(loaded.overlay.services), loaded.source)
    problems += found
    return files


def _read(repo_root: Path, relative: str, sources: dict[str, Source] | None = None) -> Source:
    """The file parsed; from `sources` where it is there (a copy whose lines and problems may change: the
    data is shared, and nothing changes it)."""
    if sources is None:
        return read(repo_root / relative, shown_as=relative)
    if relative not in sources:
        sources[relative] = read(repo_root / relative, shown_as=relative)
    found = sources[relative]
    return dataclasses.replace(found, lines=dict(found.lines), problems=list(found.problems))


def _validate(source: Source, model: type[M], problems: list[Problem]) -> M | None:
    """The model of `source`, or None; every problem (reading and validating) is added to `problems`."""
    problems += source.problems
    if any(not p.path for p in source.problems):  # not YAML at all
        return None
    if not isinstance(source.data, dict):
        got = "an empty file" if source.data is None else type(source.data).__name__
        problems.append(Problem(source.file, 1, "", f"the top level must be a mapping; got {got}"))
        return None
    try:
        result = model.model_validate(source.data)
    except ValidationError as exc:
        for err in exc.errors():
            problems += _describe(source, model, err)
        return None
    return None if source.problems else result


def _describe(source: Source, model: type[BaseModel], err: Any) -> list[Problem]:
    """One pydantic error as problems located in the file (a model validator may report several)."""
    loc = tuple(p for p in err["loc"] if p != "[key]")
    cause = (err.get("ctx") or {}).get("error")
    if isinstance(cause, FieldProblems):
        return [source.problem((*loc, *path), message) for path, message in cause.problems]
    if err["type"] == "union_tag_invalid":
        ctx = err["ctx"]
        tag = ctx["discriminator"].strip("'")
        return [source.problem((*loc, tag), f"got {short(ctx['tag'])}; allowed: {ctx['expected_tags']}")]
    if err["type"] == "extra_forbidden":
        return [_unknown_field(source, model, loc)]
    return [source.problem(loc, _message(err))]


def _unknown_field(source: Source, model: type[BaseModel], loc: tuple[Any, ...]) -> Problem:
    """Names the closest allowed field and, where the line stays short enough, all of them."""
    allowed = _fields_at(model, loc[:-1])
    close = difflib.get_close_matches(str(loc[-1]), allowed, n=1)
    hint = f" (did you mean {close[0]}?)" if close else ""
    problem = source.problem(loc, f"unknown field{hint}; allowed: {', '.join(allowed)}")
    if len(str(problem)) > MAX_LINE and close:
        others = len(allowed) - 1
        problem = source.problem(loc, f"unknown field; allowed: {close[0]} or {others} other fields")
    return problem


def _message(err: Any) -> str:
    kind, ctx, value = err["type"], err.get("ctx") or {}, err["input"]
    if kind == "missing":
        return "required field is missing"
    if kind == "string_pattern_mismatch":
        words = ALLOWED_BY_PATTERN.get(ctx["pattern"], f"a string matching {ctx['pattern']}")
        return f"got {short(value)}; allowed: {words}"
    msg: str = err["msg"]
    if msg.startswith("Value error, "):
        return f"got {short(value)}; {msg[len('Value error, ') :]}"
    if msg.startswith("Input should be "):
        return f"got {short(value)}; allowed: {msg[len('Input should be ') :]}"
    return f"got {short(value)}; {msg}"


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
