"""`pybuildctl`: buildctl's flags; `--daemonless` runs the build inside this process."""
from __future__ import annotations

import argparse
import asyncio
import csv
import json
import os
import signal
import sys
from collections.abc import Sequence
from pathlib import Path

from pybuildkit.solver.errors import BuildError

PROG = "pybuildctl"


class UsageError(BuildError):
    pass


def parse_csv_kv(text: str, flag: str) -> dict[str, str]:
    """buildctl's `k=v,k2="a,b"` syntax (a CSV record of key=value fields)."""
    try:
        fields = next(csv.reader([text], skipinitialspace=False))
    except (csv.Error, StopIteration) as exc:
        raise UsageError(f"{flag}: cannot parse {text!r}: {exc}") from exc
    out: dict[str, str] = {}
    for item in fields:
        key, sep, value = item.partition("=")
        key = key.strip().lower() if key.strip().lower() == "type" else key.strip()
        if not sep:
            raise UsageError(f"{flag}: invalid value {item!r}: expected key=value")
        if key in out and key == "name":
            out[key] += "," + value
        else:
            out[key] = value
    return out


def parse_outputs(values: Sequence[str]):
    from pybuildkit.appliance.build import Output

    outputs = []
    for value in values:
        attrs = parse_csv_kv(value, "--output")
        kind = attrs.pop("type", None)
        if kind is None:
            raise UsageError(f"--output {value!r}: type=... is required")
        outputs.append(Output(kind, attrs))
    return outputs


def parse_locals(values: Sequence[str]) -> dict[str, Path]:
    out: dict[str, Path] = {}
    for value in values:
        name, sep, path = value.partition("=")
        if not sep or not name or not path:
            raise UsageError(f"--local {value!r}: expected NAME=DIR")
        out[name] = Path(path).resolve()
    return out


def parse_opts(values: Sequence[str]) -> dict[str, str]:
    out: dict[str, str] = {}
    for value in values:
        key, sep, val = value.partition("=")
        if not key:
            raise UsageError(f"--opt {value!r}: expected KEY=VALUE")
        out[key] = val
    return out


def parse_secrets(values: Sequence[str]):
    from pybuildkit.worker.providers import SecretSources

    files: dict[str, Path] = {}
    env: dict[str, str] = {}
    for value in values:
        attrs = parse_csv_kv(value, "--secret")
        secret_id = attrs.get("id")
        if "src" in attrs or "source" in attrs:
            src = attrs.get("src") or attrs["source"]
            files[secret_id or Path(src).name] = Path(src)
        elif "env" in attrs:
            env[secret_id or attrs["env"]] = attrs["env"]
        elif secret_id:
            if secret_id in os.environ:
                env[secret_id] = secret_id
            else:
                files[secret_id] = Path(secret_id)
        else:
            raise UsageError(f"--secret {value!r}: expected id=ID,src=FILE or id=ID,env=VAR")
    return SecretSources(files, env)


def parse_ssh(values: Sequence[str]):
    from pybuildkit.worker.providers import SSHAgents

    sockets: dict[str, Path] = {}
    for value in values:
        name, sep, path = value.partition("=")
        if sep and path:
            sockets[name] = Path(path)
        else:
            sock = os.environ.get("SSH_AUTH_SOCK")
            if not sock:
                raise UsageError(f"--ssh {value}: SSH_AUTH_SOCK is not set", hint="start an ssh-agent or pass --ssh ID=/path/to/socket")
            sockets[name or "default"] = Path(sock)
    return SSHAgents(sockets)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=PROG, description="Build container images with pybuildkit.")
    parser.add_argument("--addr", default=os.environ.get("BUILDKIT_HOST", ""), help="daemon address")
    parser.add_argument("--daemonless", action="store_true", help="build inside this process, no daemon")
    parser.add_argument("--root", type=Path, help="state directory for --daemonless")
    parser.add_argument("--config", type=Path, help="pybuildkitd.toml for --daemonless")
    parser.add_argument("--debug", action="store_true")
    sub = parser.add_subparsers(dest="command", required=True)
    build = sub.add_parser("build", help="build a definition or a Dockerfile")
    build.add_argument("--output", "-o", action="append", default=[])
    build.add_argument("--progress", default="auto")
    build.add_argument("--local", action="append", default=[])
    build.add_argument("--frontend", default="")
    build.add_argument("--opt", action="append", default=[])
    build.add_argument("--no-cache", action="store_true")
    build.add_argument("--secret", action="append", default=[])
    build.add_argument("--ssh", action="append", default=[])
    build.add_argument("--allow", action="append", default=[])
    build.add_argument("--metadata-file", type=Path)
    build.add_argument("--export-cache", action="append", default=[])
    build.add_argument("--import-cache", action="append", default=[])
    return parser


async def _daemonless_build(args: argparse.Namespace) -> int:
    from pybuildkit.appliance.build import BuildRequest, make_builder
    from pybuildkit.appliance.cache_options import parse_cache_options
    from pybuildkit.appliance.config import load_config
    from pybuildkit.appliance.progressui import display, make_printer
    from pybuildkit.solver.pb import ops_pb2 as pb
    from pybuildkit.solver.progress import ProgressWriter
    from pybuildkit.worker.providers import DirectoryLocals, Providers
    from pybuildkit.worker.registry.auth import DockerConfigCredentials

    config = load_config(args.config, root=args.root)
    definition = None
    if not args.frontend:
        data = sys.stdin.buffer.read()
        if not data:
            raise UsageError("no LLB definition on stdin", hint="pipe a marshalled Definition, or pass --frontend dockerfile.v0")
        definition = pb.Definition()
        try:
            definition.ParseFromString(data)
        except Exception as exc:
            raise UsageError(f"stdin is not a marshalled LLB Definition: {exc}") from exc
    local_dirs = parse_locals(args.local)
    request = BuildRequest(
        definition=definition, frontend=args.frontend, frontend_attrs=parse_opts(args.opt),
        local_dirs=local_dirs, outputs=parse_outputs(args.output), entitlements=args.allow,
        no_cache=args.no_cache,
        cache_exports=parse_cache_options(args.export_cache, "--export-cache"),
        cache_imports=parse_cache_options(args.import_cache, "--import-cache"))
    providers = Providers(DirectoryLocals(local_dirs), parse_secrets(args.secret), parse_ssh(args.ssh),
                          DockerConfigCredentials())
    printer = make_printer(args.progress, sys.stderr)
    progress = ProgressWriter()
    shown = asyncio.ensure_future(display(progress.subscribe(), printer))
    log = (lambda msg: print(f"pybuildkit: {msg}", file=sys.stderr)) if args.debug else None
    builder = await asyncio.to_thread(make_builder, config, log=log)
    try:
        result = await builder.build(request, providers, progress)
    finally:
        progress.close()
        await shown
        await builder.worker.aclose()
    if args.metadata_file:
        args.metadata_file.write_text(json.dumps(result.exporter_response, indent=2) + "\n")
    return 0


def _print_error(exc: BuildError) -> None:
    excerpt = getattr(exc, "excerpt", None)
    if callable(excerpt) and excerpt():
        print(excerpt(), file=sys.stderr)
    tail = getattr(exc, "output_tail", None) or getattr(getattr(exc, "__cause__", None), "output_tail", None)
    if tail:
        print("------", file=sys.stderr)
        for line in tail:
            print(f" > {line}", file=sys.stderr)
        print("------", file=sys.stderr)
    print(f"error: failed to solve: {exc.message}", file=sys.stderr)
    if exc.hint:
        print(f"hint: {exc.hint}", file=sys.stderr)


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command == "build" and not args.daemonless:
        print(f"{PROG}: the daemon client is not available yet; use --daemonless", file=sys.stderr)
        return 2
    loop = asyncio.new_event_loop()
    task = loop.create_task(_daemonless_build(args))
    loop.add_signal_handler(signal.SIGINT, task.cancel)
    loop.add_signal_handler(signal.SIGTERM, task.cancel)
    try:
        return loop.run_until_complete(task)
    except asyncio.CancelledError:
        print("error: build cancelled", file=sys.stderr)
        return 130
    except BuildError as exc:
        _print_error(exc)
        return 1
    finally:
        loop.close()


if __name__ == "__main__":
    sys.exit(main())
