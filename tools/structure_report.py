"""Print numbers about the code's structure (issue #30): big functions, the generator's import depth, and
where the runtime contract's values are written.

    .venv/bin/python tools/structure_report.py

Standard library only (ast): it reads the sources, it imports none of them.

- The 10 largest functions (and methods) by line count over constructs/, apps/, policies/, tools/ and main.py
  (not imports/ or dist/, nor generated gRPC stubs).
- The longest chain of intra-package imports that starts at a module under constructs/mlplatform/components/:
  edges are the `import`/`from ... import` statements of one `mlplatform` module naming another (a name
  imported from a package counts as its submodule where one exists); a module is not revisited on one path.
  Importing a module also runs its parent packages' __init__.py at run time; those implicit edges are not
  counted. Twice: the imports that run (not those under `if TYPE_CHECKING:`, which only the type checker
  reads), then all of them.
- The signatures (functions and constructors) in constructs/ that take a whole `Environment`.
- For each runtime-contract value (each INFERENCE_* setting the generator writes, each port, each mount path
  of the inference pods): in how many places constructs/ writes it as a literal (a `str` or `int` constant).
  The INFERENCE_* names come from the service's own settings class (its fields and env_prefix), not from the
  generator; settings the generator never writes are counted, not listed, and any INFERENCE_* literal the
  service does not read is listed and flagged.
"""

from __future__ import annotations

import ast
import sys
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SCANNED = ("constructs", "apps", "policies", "tools", "main.py")
SKIPPED_DIRS = {"imports", "dist", ".venv", "node_modules", "__pycache__", ".tools", "build", ".git"}
PACKAGE = "mlplatform"
PACKAGE_DIR = ROOT / "constructs" / PACKAGE
SETTINGS = ROOT / "apps" / "inference" / "inference_service" / "settings.py"
#: The ports of the inference pods' runtime contract: HTTP, gRPC, and the Redis its URLs name.
PORTS = (8080, 8081, 6379)
#: Where the inference pods find what the contract mounts, and the file names inside those mounts.
MOUNT_PATHS = (
    "/models",
    "/tmp",  # noqa: S108  (a path to look for, not one used)
    "/var/run/secrets/inference",
    "/var/run/secrets/metrics",
    "/var/run/secrets/redis",
    "/var/run/secrets/jobs-redis",
    "/etc/inference/identity",
)


def python_files(*tops: str) -> Iterator[Path]:
    for top in tops:
        path = ROOT / top
        if path.is_file():
            yield path
            continue
        for file in sorted(path.rglob("*.py")):
            parts = set(file.relative_to(ROOT).parts[:-1])
            if parts & SKIPPED_DIRS or "_pb2" in file.name:
                continue
            yield file


def parse(path: Path) -> ast.Module:
    return ast.parse(path.read_text(encoding="utf-8"), filename=str(path))


def largest_functions(count: int = 10) -> list[tuple[int, str]]:
    sizes = []
    for path in python_files(*SCANNED):
        for node in ast.walk(parse(path)):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                lines = (node.end_lineno or node.lineno) - node.lineno + 1
                sizes.append((lines, f"{path.relative_to(ROOT)}:{node.lineno} {node.name}"))
    return sorted(sizes, key=lambda item: (-item[0], item[1]))[:count]


def module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE_DIR.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _type_checking(node: ast.AST) -> bool:
    """`if TYPE_CHECKING:` (or `typing.TYPE_CHECKING`)."""
    if not isinstance(node, ast.If):
        return False
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _nodes(tree: ast.AST, *, runtime: bool) -> Iterator[ast.AST]:
    """Every node under `tree`; with `runtime`, not those of `if TYPE_CHECKING:` blocks."""
    for child in ast.iter_child_nodes(tree):
        if runtime and _type_checking(child):
            continue
        yield child
        yield from _nodes(child, runtime=runtime)


def import_graph(*, runtime: bool) -> dict[str, set[str]]:
    """module -> the `mlplatform` modules it imports (with `runtime`, not under `if TYPE_CHECKING:`)."""
    modules = {module_name(path): path for path in python_files(f"constructs/{PACKAGE}")}
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        targets: set[str] = set()
        for node in _nodes(parse(path), runtime=runtime):
            if isinstance(node, ast.Import):
                targets |= {alias.name for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                for alias in node.names:
                    sub = f"{node.module}.{alias.name}"
                    targets.add(sub if sub in modules else node.module)
        graph[name] = {t for t in targets if t in modules and t != name}
    return graph


def longest_chain(graph: dict[str, set[str]], start: str) -> list[str]:
    best = [start]

    def walk(path: list[str]) -> None:
        nonlocal best
        if len(path) > len(best):
            best = list(path)
        for nxt in sorted(graph[path[-1]]):
            if nxt not in path:
                walk([*path, nxt])

    walk([start])
    return best


def whole_environment_signatures() -> list[str]:
    found = []
    for path in python_files(f"constructs/{PACKAGE}"):
        for node in ast.walk(parse(path)):
            if not isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                continue
            args = node.args
            for arg in [*args.posonlyargs, *args.args, *args.kwonlyargs]:
                if isinstance(arg.annotation, ast.Name) and arg.annotation.id == "Environment":
                    found.append(f"{path.relative_to(ROOT)}:{node.lineno} {node.name}({arg.arg})")
    return found


def settings_names() -> list[str]:
    """INFERENCE_<FIELD> for every field of the service's pydantic-settings class, read from its source."""
    for node in ast.walk(parse(SETTINGS)):
        if isinstance(node, ast.ClassDef) and node.name == "Settings":
            prefix, fields = "", []
            for stmt in node.body:
                if isinstance(stmt, ast.AnnAssign) and isinstance(stmt.target, ast.Name):
                    fields.append(stmt.target.id)
                elif isinstance(stmt, ast.Assign) and isinstance(stmt.value, ast.Call):
                    targets = [t.id for t in stmt.targets if isinstance(t, ast.Name)]
                    for keyword in stmt.value.keywords if targets == ["model_config"] else []:
                        if keyword.arg == "env_prefix" and isinstance(keyword.value, ast.Constant):
                            prefix = str(keyword.value.value)
            return [f"{prefix}{field}".upper() for field in fields]
    raise SystemExit(f"{SETTINGS}: no class Settings")


def literal_counts(values: list[str | int]) -> dict[str | int, int]:
    counts: dict[str | int, int] = dict.fromkeys(values, 0)
    for path in python_files("constructs"):
        for node in ast.walk(parse(path)):
            if isinstance(node, ast.Constant) and not isinstance(node.value, bool):
                value = node.value
                if isinstance(value, str | int) and value in counts and type(value) is not bool:
                    counts[value] += 1
    return counts


def main() -> int:
    print("## 10 largest functions (lines)")
    for lines, where in largest_functions():
        print(f"{lines:5d}  {where}")
    for runtime, what in ((True, "imports that run"), (False, "with the type checker's")):
        graph = import_graph(runtime=runtime)
        starts = sorted(m for m in graph if m.startswith(f"{PACKAGE}.components"))
        chain = max((longest_chain(graph, s) for s in starts), key=len)
        print(f"\n## longest import chain from {PACKAGE}.components ({what}): {len(chain) - 1} imports")
        print("  " + "\n  -> ".join(chain))
    signatures = whole_environment_signatures()
    print(f"\n## signatures taking a whole Environment in constructs/: {len(signatures)}")
    for where in signatures:
        print(f"  {where}")
    read = sorted(settings_names())
    literals = literal_counts_names()
    extra = sorted(set(literals) - set(read))
    values: list[str | int] = [*(n for n in read if n in literals), *extra, *PORTS, *MOUNT_PATHS]
    counts = literal_counts(values)
    print("\n## runtime-contract values: places in constructs/ that write each as a literal")
    for value in values:
        unknown = "  (not a setting of the service)" if value in extra else ""
        print(f"{counts[value]:3d}  {value}{unknown}")
    unwritten = len([n for n in read if n not in literals])
    print(f"(and {unwritten} of the service's {len(read)} INFERENCE_* settings: no literal in constructs/)")
    twice = [str(v) for v in values if counts[v] > 1]
    print(f"values: {len(values)}; written in more than one place: {len(twice)} {' '.join(twice)}")
    return 0


def literal_counts_names() -> list[str]:
    """Every INFERENCE_* string literal in constructs/ (to show any the service does not read)."""
    found = set()
    for path in python_files("constructs"):
        for node in ast.walk(parse(path)):
            if isinstance(node, ast.Constant) and isinstance(node.value, str):
                text = node.value
                if text.startswith("INFERENCE_") and text.isupper() and " " not in text:
                    found.add(text)
    return sorted(found)


if __name__ == "__main__":
    sys.exit(main())
