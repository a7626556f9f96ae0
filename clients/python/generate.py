#!/usr/bin/env python3
"""Generates the Python stubs of fedflow's gRPC API (proto/fedflow/**/v1/*.proto).

The stubs go to clients/python/gen/ (git-ignored), as the package tree fedflow/<area>/v1/
(`fedflow.scheduler.v1.scheduler_pb2`, `..._pb2_grpc`, and `.pyi` type stubs). The directory
is emptied first, so stale stubs of removed protos do not linger.

Needs grpcio-tools (see requirements.txt). Usage: python generate.py [--out DIR]
"""

import argparse
import pathlib
import shutil
import sys

HERE = pathlib.Path(__file__).resolve().parent
REPO = HERE.parent.parent
PROTO_ROOT = REPO / "proto"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=pathlib.Path, default=HERE / "gen",
                        help="output directory (default: clients/python/gen)")
    args = parser.parse_args()
    try:
        from grpc_tools import protoc
        import grpc_tools
    except ImportError:
        print("generate.py: grpcio-tools is not installed (pip install -r requirements.txt)",
              file=sys.stderr)
        return 1

    protos = sorted(PROTO_ROOT.glob("fedflow/*/v1/*.proto"))
    if not protos:
        print(f"generate.py: no .proto files under {PROTO_ROOT}/fedflow", file=sys.stderr)
        return 1

    out = args.out.resolve()
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)

    well_known = pathlib.Path(grpc_tools.__file__).parent / "_proto"
    command = [
        "grpc_tools.protoc",
        f"--proto_path={PROTO_ROOT}",
        f"--proto_path={well_known}",
        f"--python_out={out}",
        f"--pyi_out={out}",
        f"--grpc_python_out={out}",
        *[str(p.relative_to(PROTO_ROOT)) for p in protos],
    ]
    status = protoc.main(command)
    if status != 0:
        print(f"generate.py: protoc failed with status {status}", file=sys.stderr)
        return 1

    # Regular packages (an __init__.py in every directory), so `import fedflow...` never
    # resolves to some other namespace package on sys.path.
    for directory in [out, *[d for d in out.rglob("*") if d.is_dir()]]:
        if directory != out:
            (directory / "__init__.py").touch()

    for proto in protos:
        print(f"generated {proto.relative_to(REPO)}")
    print(f"stubs in {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
