"""Realistic Dockerfiles against the fixture images, checked file by file."""
from __future__ import annotations

import subprocess
from pathlib import Path


def _context(tmp_path: Path, dockerfile: str, files: dict[str, str] | None = None) -> Path:
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    (ctx / "Dockerfile").write_text(dockerfile)
    for name, text in (files or {}).items():
        (ctx / name).parent.mkdir(parents=True, exist_ok=True)
        (ctx / name).write_text(text)
    return ctx


def _build(pybuildctl, ctx: Path, out: Path, *extra: str, check: bool = True):
    return pybuildctl(["--frontend", "dockerfile.v0", "--local", f"context={ctx}", "--local", f"dockerfile={ctx}",
                       "--output", f"type=local,dest={out}", *extra], check=check)


BUILDER_RUNTIME = """\
FROM busybox AS builder
WORKDIR /src
COPY main.c .
RUN --mount=type=cache,target=/root/.cache,id=compiler \\
    mkdir -p /root/.cache && echo "compiled $(wc -c < main.c) bytes" > /root/.cache/last && \\
    mkdir -p /out && cp /root/.cache/last /out/app && ls /root/.cache > /out/cache-listing

FROM busybox AS runtime
COPY --from=builder /out/app /usr/local/bin/app
COPY --from=builder /out/cache-listing /cache-listing
CMD ["cat", "/usr/local/bin/app"]
"""

SECRET_SHA = "f9d9f399d40c3f76914bb6d4b5d614f54cca87d3d5df005ff8ef820fd81584b8"  # sha256 of the secret: the Dockerfile must not spell the secret out
SECRETS = f"""\
FROM busybox
RUN --mount=type=secret,id=token,mode=0400 \\
    [ "$(stat -c %a /run/secrets/token)" = "400" ] && sha256sum /run/secrets/token | cut -d' ' -f1 > /token.sha
RUN --mount=type=secret,id=token,env=API_TOKEN \\
    [ "$(echo -n "$API_TOKEN" | sha256sum | cut -d' ' -f1)" = "{SECRET_SHA}" ] && echo ok > /env-ok
"""

HEREDOCS = """\
FROM busybox
COPY <<EOF /etc/app.conf
name=demo
mode=$MODE
EOF
ARG MODE=fast
RUN <<EOF
set -e
mkdir -p /out
echo "mode is $MODE" > /out/mode
EOF
RUN <<-'SCRIPT' sh
\techo 'literal $HOME' > /out/literal
SCRIPT
COPY <<A <<B /out/
first
A
second
B
"""

CROSS = """\
FROM --platform=$BUILDPLATFORM busybox AS cross
ARG TARGETARCH
ARG BUILDARCH
RUN mkdir /out && echo "built on $BUILDARCH for $TARGETARCH ($(uname -m))" > /out/cross

FROM busybox
COPY --from=cross /out/cross /cross
RUN uname -m > /native
"""


def test_builder_runtime_split_with_cache_mount(pybuildctl, tmp_path) -> None:
    ctx = _context(tmp_path, BUILDER_RUNTIME, {"main.c": "int main(void) { return 0; }\n", "README": "x\n"})
    out = tmp_path / "out"
    _build(pybuildctl, ctx, out)
    assert (out / "usr" / "local" / "bin" / "app").read_text() == "compiled 29 bytes\n"
    assert (out / "cache-listing").read_text() == "last\n"
    assert not (out / "src").exists(), "the build stage's files stay out of the runtime image"


def test_secret_is_used_but_never_in_the_output(pybuildctl, tmp_path) -> None:
    ctx = _context(tmp_path, SECRETS)
    secret = tmp_path / "token.txt"
    secret.write_text("hunter2-token")
    out = tmp_path / "out"
    _build(pybuildctl, ctx, out, "--secret", f"id=token,src={secret}")
    assert (out / "token.sha").read_text().strip() == SECRET_SHA
    assert (out / "env-ok").read_text() == "ok\n"
    assert not (out / "run" / "secrets" / "token").exists()
    leaked = subprocess.run(["grep", "-rl", "hunter2-token", str(out), str(pybuildctl.default_root)],
                            capture_output=True, text=True)
    assert leaked.stdout == "", f"the secret leaked into: {leaked.stdout}"


def test_heredoc_heavy_dockerfile(pybuildctl, tmp_path) -> None:
    ctx = _context(tmp_path, HEREDOCS)
    out = tmp_path / "out"
    _build(pybuildctl, ctx, out)
    assert (out / "etc" / "app.conf").read_text() == "name=demo\nmode=\n"
    assert (out / "out" / "mode").read_text() == "mode is fast\n"
    assert (out / "out" / "literal").read_text() == "literal $HOME\n"
    assert (out / "out" / "A").read_text() == "first\n"
    assert (out / "out" / "B").read_text() == "second\n"


def test_three_platforms_with_buildplatform_and_targetarch(pybuildctl, tmp_path) -> None:
    ctx = _context(tmp_path, CROSS)
    out = tmp_path / "out"
    _build(pybuildctl, ctx, out, "--opt", "platform=linux/amd64,linux/arm64,linux/s390x")
    expected = {"linux_amd64": ("amd64", "x86_64"), "linux_arm64": ("arm64", "aarch64"),
                "linux_s390x": ("s390x", "s390x")}
    assert sorted(p.name for p in out.iterdir()) == sorted(expected)
    for folder, (arch, machine) in expected.items():
        assert (out / folder / "cross").read_text() == f"built on amd64 for {arch} (x86_64)\n"
        assert (out / folder / "native").read_text() == f"{machine}\n"


def test_network_host_needs_both_config_and_allow(pybuildctl, tmp_path) -> None:
    ctx = _context(tmp_path, "FROM busybox\nRUN --network=host true\n")
    run = _build(pybuildctl, ctx, tmp_path / "out", check=False)
    assert run.returncode == 1
    assert "network.host is not allowed by the builder" in run.stderr
    assert "pass --allow network.host" in run.stderr


def test_errors_name_the_dockerfile_line(pybuildctl, tmp_path) -> None:
    ctx = _context(tmp_path, "FROM busybox\nRUN true\nCOPPY a b\n")
    run = _build(pybuildctl, ctx, tmp_path / "out", check=False)
    assert run.returncode == 1
    assert "Dockerfile:3" in run.stderr
    assert "unknown instruction: COPPY (did you mean COPY?)" in run.stderr
    assert "Traceback" not in run.stderr


def test_the_daemons_expansion_bound_applies_to_dockerfiles(pybuildctl, builder_config, tmp_path) -> None:
    """`[frontend] max-expansion-size` in pybuildkitd.toml bounds what variables may expand to."""
    config = tmp_path / "bounded.toml"
    config.write_text(builder_config.read_text() + "\n[frontend]\nmax-expansion-size = 64\n")
    ctx = _context(tmp_path, "FROM busybox\nENV A=0123456789012345678901234567890123456789\nENV B=${A}${A}\n")
    run = pybuildctl(["--frontend", "dockerfile.v0", "--local", f"context={ctx}", "--local", f"dockerfile={ctx}"],
                     check=False, config=config)
    assert run.returncode == 1
    assert "Dockerfile:3" in run.stderr and "${A}" in run.stderr
