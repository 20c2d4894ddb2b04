"""The demo (README): a three-platform Dockerfile build with pybuildctl --daemonless, pushed to a
local registry this script starts and seeds with the fixture base image, then read back with
skopeo."""
from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.fixtures.base_image import push_base_images  # noqa: E402
from tests.fixtures.registry import start_registry  # noqa: E402

DOCKERFILE = """\
# syntax=docker/dockerfile:1
FROM --platform=$BUILDPLATFORM busybox AS prepare
ARG TARGETARCH
RUN mkdir -p /out && echo "prepared on $(uname -m) for $TARGETARCH" > /out/prepared.txt

FROM busybox
COPY --from=prepare /out/prepared.txt /etc/prepared.txt
COPY hello.sh /usr/local/bin/hello
RUN chmod +x /usr/local/bin/hello && echo "built on $(uname -m)" > /etc/built.txt
CMD ["hello"]
"""
HELLO = '#!/bin/sh\ncat /etc/prepared.txt /etc/built.txt\n'


def main() -> int:
    work = Path(tempfile.mkdtemp(prefix="pybuildkit-demo-", dir="/var/tmp"))
    registry = start_registry(work / "registry")
    try:
        print(f"registry on {registry.host}; seeding the busybox base image for six platforms", flush=True)
        push_base_images(registry)
        context = work / "context"
        context.mkdir()
        (context / "Dockerfile").write_text(DOCKERFILE)
        (context / "hello.sh").write_text(HELLO)
        config = work / "pybuildkitd.toml"
        config.write_text(f'[registry."docker.io"]\nmirrors = ["{registry.host}"]\n'
                          f'[registry."{registry.host}"]\nhttp = true\n')
        image = f"{registry.host}/demo/hello:latest"
        cmd = [sys.executable, "-m", "pybuildkit.appliance.cli.main", "--daemonless", "--root", str(work / "state"),
               "--config", str(config), "build", "--frontend", "dockerfile.v0",
               "--local", f"context={context}", "--local", f"dockerfile={context}",
               "--opt", "platform=linux/amd64,linux/arm64,linux/s390x", "--progress", "plain",
               "--output", f"type=image,name={image},push=true", "--metadata-file", str(work / "metadata.json")]
        print("$ " + " ".join(cmd[2:]), flush=True)
        if subprocess.run(cmd).returncode != 0:
            return 1
        raw = json.loads(subprocess.run(["skopeo", "inspect", "--raw", "--tls-verify=false", f"docker://{image}"],
                                        check=True, capture_output=True, text=True).stdout)
        print(f"\npushed {image}: {json.loads((work / 'metadata.json').read_text())['containerimage.digest']}")
        for manifest in raw["manifests"]:
            print(f"  {manifest['platform']['os']}/{manifest['platform']['architecture']}: {manifest['digest']}")
        return 0
    finally:
        registry.stop()
        subprocess.run(["rm", "-rf", "--one-file-system", str(work)], check=False)


if __name__ == "__main__":
    sys.exit(main())
