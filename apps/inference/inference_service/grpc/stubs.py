"""Generates the Python modules of inference.proto with grpcio-tools.

`python -m inference_service.grpc.stubs [ROOT]` writes inference_pb2.py, inference_pb2.pyi and
inference_pb2_grpc.py beside the .proto under ROOT (the folder holding `inference_service/`; default: this
checkout's). `make setup` runs it for the checkout, the image build (tools/imagebuild) for the image's /app.
The output depends only on the .proto and grpcio-tools' pinned version, so every build makes the same bytes;
git ignores the generated files.
"""

from __future__ import annotations

import shutil
import sys
import tempfile
from pathlib import Path

PROTO = Path(__file__).with_name("inference.proto")
PACKAGE_ROOT = PROTO.parents[2]  # holds inference_service/
RELATIVE = PROTO.relative_to(PACKAGE_ROOT)  # inference_service/grpc/inference.proto: imports by package
GENERATED = ("inference_pb2.py", "inference_pb2.pyi", "inference_pb2_grpc.py")


def generate(root: Path = PACKAGE_ROOT) -> list[Path]:
    """Writes the generated modules under `root` (each replaced atomically); returns their paths."""
    from grpc_tools import protoc  # a build-time tool: the image has no grpcio-tools

    with tempfile.TemporaryDirectory(prefix="grpc-stubs-") as tmp:
        include = Path(protoc.__file__).with_name("_proto")  # the well-known types, as protoc expects
        argv = [
            "grpc_tools.protoc",
            f"-I{PACKAGE_ROOT}",
            f"-I{include}",
            f"--python_out={tmp}",
            f"--pyi_out={tmp}",
            f"--grpc_python_out={tmp}",
            str(RELATIVE),
        ]
        if protoc.main(argv) != 0:
            raise SystemExit(f"grpc_tools.protoc failed on {PROTO}")
        target = root / RELATIVE.parent
        target.mkdir(parents=True, exist_ok=True)
        written = []
        for name in GENERATED:
            made = Path(tmp) / RELATIVE.parent / name
            partial = target / f".{name}.partial"
            shutil.copyfile(made, partial)
            partial.replace(target / name)
            written.append(target / name)
        return written


def main() -> None:
    root = Path(sys.argv[1]) if len(sys.argv) > 1 else PACKAGE_ROOT
    for path in generate(root):
        print(f"grpc stubs: wrote {path}")


if __name__ == "__main__":
    main()
