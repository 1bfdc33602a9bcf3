"""Generates service/grpc's protobuf modules from docs/open_inference_grpc.proto (`make protos`):
the messages (grpcio-tools' protoc) and their type stubs (mypy-protobuf), registered in the
service's own descriptor pool (service.grpc.pool) instead of protobuf's default one.

    python -m tools.protos [OUT]    # OUT: service/grpc by default
"""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PROTO = ROOT / "docs" / "open_inference_grpc.proto"
MODULE = "open_inference_grpc_pb2"
DEFAULT_POOL = "_descriptor_pool.Default().AddSerializedFile("
IMPORTS = "# @@protoc_insertion_point(imports)\n"


def generate(out: Path) -> None:
    """MODULE.py and MODULE.pyi in `out`."""
    plugin = Path(sys.executable).parent / "protoc-gen-mypy"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "grpc_tools.protoc",
            f"--proto_path={PROTO.parent}",
            f"--plugin=protoc-gen-mypy={plugin}",
            f"--python_out={out}",
            f"--mypy_out=quiet:{out}",
            PROTO.name,
        ],
        check=True,
        cwd=PROTO.parent,
    )
    module = out / f"{MODULE}.py"
    text = module.read_text()
    if DEFAULT_POOL not in text or IMPORTS not in text:
        raise SystemExit(f"{module}: protoc's output has changed; update tools/protos.py")
    text = text.replace(DEFAULT_POOL, "POOL.AddSerializedFile(")
    text = text.replace(IMPORTS, f"{IMPORTS}from service.grpc.pool import POOL\n")
    module.write_text(text)


if __name__ == "__main__":
    generate(Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT / "service" / "grpc")
