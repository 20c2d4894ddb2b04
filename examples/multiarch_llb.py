"""Prints a marshalled LLB Definition (as buildctl reads on stdin): a base image, four
independent steps and a merge of their outputs. With --platform it targets that platform.

    python examples/multiarch_llb.py --image 127.0.0.1:5000/library/busybox:latest \
        --platform linux/arm64 | pybuildctl --daemonless build --output type=local,dest=out
"""
from __future__ import annotations

import argparse
import sys

from pybuildkit.solver.llb import builder as llb
from pybuildkit.solver.platforms import parse_platform


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--image", default="docker.io/library/busybox:latest")
    parser.add_argument("--platform", default="local")
    parser.add_argument("--branches", type=int, default=4)
    parser.add_argument("--nonce", default="")
    args = parser.parse_args()
    platform = parse_platform(args.platform)
    base = llb.image(args.image, platform=platform).add_env("PATH", llb.DEFAULT_PATH)
    outputs = []
    for i in range(args.branches):
        script = f"echo branch {i} on $(uname -m) {args.nonce} > /out/branch-{i}.txt"
        run = base.run(["/bin/sh", "-c", script], mounts=[llb.Mount("/out", llb.scratch())],
                       constraints=llb.Constraints(custom_name=f"branch {i} ({platform})"))
        outputs.append(run.get_mount("/out"))
    merged = llb.merge(outputs, llb.Constraints(custom_name="merge branches"))
    sys.stdout.buffer.write(merged.marshal(platform).SerializeToString())


if __name__ == "__main__":
    main()
