"""`pybuildctl`: buildctl's commands and flags, as a client of pybuildkitd (or upstream buildkitd).

`--daemonless` starts a private daemon for the one command.
"""
from __future__ import annotations

import argparse
import csv
import gc
import os
import signal
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from pybuildkit.solver.errors import BuildError

if TYPE_CHECKING:
    from pybuildkit.appliance.client.daemon_process import DaemonProcess

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
    from pybuildkit.appliance.outputs import Output

    outputs = []
    for value in values:
        attrs = parse_csv_kv(value, "--output")
        kind = attrs.pop("type", None)
        if kind is None:
            raise UsageError(f"--output {value!r}: type=... is required")
        outputs.append(Output(kind, attrs))
    return outputs


def parse_locals(values: Sequence[str], flag: str = "--local") -> dict[str, Path]:
    out: dict[str, Path] = {}
    for value in values:
        name, sep, path = value.partition("=")
        if not sep or not name or not path:
            raise UsageError(f"{flag} {value!r}: expected NAME=DIR")
        folder = Path(path).resolve()
        if not folder.is_dir():
            raise UsageError(f"{flag} {value}: {folder} is not a directory")
        out[name] = folder
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
    from pybuildkit.appliance.client.connection import default_address

    parser = argparse.ArgumentParser(prog=PROG, description="Build container images with pybuildkitd (BuildKit's API).")
    parser.add_argument("--addr", default=default_address(),
                        help="daemon address, unix://PATH or tcp://HOST:PORT (env BUILDKIT_HOST; default %(default)s)")
    parser.add_argument("--tlscacert", type=Path, help="CA certificate to verify the daemon's certificate")
    parser.add_argument("--tlscert", type=Path, help="client certificate (mTLS)")
    parser.add_argument("--tlskey", type=Path, help="client key (mTLS)")
    parser.add_argument("--tlsservername", default="", help="server name to verify in the daemon's certificate")
    parser.add_argument("--timeout", type=float, default=5.0, help="seconds to wait for the connection (default 5)")
    parser.add_argument("--wait", action="store_true", help="wait for the daemon to become available")
    parser.add_argument("--daemonless", action="store_true",
                        help="start a private pybuildkitd for this command and stop it afterwards")
    parser.add_argument("--root", type=Path, help="state directory of the --daemonless daemon")
    parser.add_argument("--config", type=Path, help="pybuildkitd.toml of the --daemonless daemon")
    parser.add_argument("--debug", action="store_true", help="debug output")
    parser.add_argument("--version", action="version", version=f"{PROG} v0.2.0")
    sub = parser.add_subparsers(dest="command", required=True)
    build = sub.add_parser("build", aliases=["b"], help="build a definition from stdin or a Dockerfile")
    build.add_argument("--output", "-o", action="append", default=[], help="output: type=local|tar|image|oci|docker,k=v,...")
    build.add_argument("--progress", default="auto", help="auto, tty, plain, rawjson or quiet (env BUILDKIT_PROGRESS)")
    build.add_argument("--local", action="append", default=[], help="a local directory, NAME=DIR (context=., dockerfile=.)")
    build.add_argument("--oci-layout", action="append", default=[],
                       help="an OCI image layout, NAME=DIR, for --opt context:X=oci-layout://NAME@DIGEST")
    build.add_argument("--frontend", default="", help="frontend, e.g. dockerfile.v0 (without it, stdin is LLB)")
    build.add_argument("--opt", action="append", default=[], help="frontend option KEY=VALUE (build-arg:K=V, target=...)")
    build.add_argument("--no-cache", action="store_true", help="do not use the cache")
    build.add_argument("--secret", action="append", default=[], help="secret: id=ID,src=FILE or id=ID,env=VAR")
    build.add_argument("--ssh", action="append", default=[], help="ssh agent: default or ID=SOCKET")
    build.add_argument("--allow", action="append", default=[], help="entitlement: network.host or security.insecure")
    build.add_argument("--metadata-file", type=Path, help="write the exporter response as JSON to this file")
    build.add_argument("--export-cache", action="append", default=[], help="cache export: type=registry|local|inline,...")
    build.add_argument("--import-cache", action="append", default=[], help="cache import: type=registry|local,...")
    du = sub.add_parser("du", help="disk usage of the build cache")
    du.add_argument("--filter", "-f", action="append", default=[], help="filter records, e.g. type==regular")
    du.add_argument("--verbose", "-v", action="store_true", help="show every field of each record")
    prune = sub.add_parser("prune", help="remove build cache")
    prune.add_argument("--all", action="store_true", help="include internal and shared records")
    prune.add_argument("--keep-duration", default="", help="keep records used within this duration (e.g. 24h)")
    prune.add_argument("--keep-storage", type=float, default=0, help="keep this much storage, in MB")
    prune.add_argument("--filter", "-f", action="append", default=[], help="filter records, e.g. type==regular")
    prune.add_argument("--verbose", "-v", action="store_true", help="list what was removed")
    debug = sub.add_parser("debug", help="daemon information")
    debug_sub = debug.add_subparsers(dest="debug_command", required=True)
    workers = debug_sub.add_parser("workers", help="list workers and their platforms")
    workers.add_argument("--verbose", "-v", action="store_true", help="show labels and GC policies")
    debug_sub.add_parser("info", help="daemon version")
    return parser


def parse_duration(text: str, flag: str) -> float:
    """Go-style durations (`1h30m`, `90s`) or plain seconds."""
    import re

    if not text:
        return 0.0
    if re.fullmatch(r"\d+(\.\d+)?", text):
        return float(text)
    parts = re.findall(r"(\d+(?:\.\d+)?)(ns|us|µs|ms|s|m|h)", text)
    if not parts or "".join(n + u for n, u in parts) != text:
        raise UsageError(f"{flag} {text!r}: expected a duration such as 30m, 24h or 1h30m")
    scale = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1, "m": 60, "h": 3600}
    return sum(float(n) * scale[u] for n, u in parts)


def _read_definition(frontend: str):
    from pybuildkit.solver.pb import ops_pb2 as pb

    if frontend:
        return None
    data = sys.stdin.buffer.read()
    if not data:
        raise UsageError("no LLB definition on stdin", hint="pipe a marshalled Definition, or pass --frontend dockerfile.v0")
    definition = pb.Definition()
    try:
        definition.ParseFromString(data)
    except Exception as exc:
        raise UsageError(f"stdin is not a marshalled LLB Definition: {exc}") from exc
    return definition


def _write_metadata(args: argparse.Namespace, response: dict[str, str], ref: str = "") -> None:
    from pybuildkit.appliance.metadata_file import write_metadata_file

    if args.metadata_file:
        write_metadata_file(args.metadata_file, response, build_ref=ref)


def _channel(args: argparse.Namespace, address: str):
    from pybuildkit.appliance.client.connection import TLSOptions, channel

    return channel(address, TLSOptions(args.tlscacert, args.tlscert, args.tlskey, args.tlsservername))


async def _connected(args: argparse.Namespace, address: str):
    """A ControlClient whose daemon answered (ListWorkers first, as buildctl does)."""
    import grpc

    from pybuildkit.appliance.client.connection import unreachable
    from pybuildkit.appliance.client.control import ControlClient

    client = ControlClient(_channel(args, address))
    try:
        workers = await client.list_workers(timeout=None if args.wait else args.timeout, wait_for_ready=args.wait)
    except grpc.aio.AioRpcError as exc:
        await client.channel.close()
        raise unreachable(address, exc) from None
    return client, workers


async def _remote_build(args: argparse.Namespace, address: str) -> int:
    import asyncio

    # ListWorkers goes out first, as buildctl's; the build's own set-up (imports, flags, the
    # session's services) is done while it travels instead of after its answer
    connecting = asyncio.ensure_future(_connected(args, address))
    await _let_go()
    from pybuildkit.appliance.cache_options import parse_cache_options
    from pybuildkit.appliance.client.solve import SolveOptions, run_solve
    from pybuildkit.appliance.epoch import with_env_epoch
    from pybuildkit.appliance.outputs import CHECK_RESULT_TEXT, CLIENT_SIDE_EXPORTERS
    from pybuildkit.solver.progress import ProgressWriter

    try:
        outputs = parse_outputs(args.output)
        definition = _read_definition(args.frontend)
        attrs = with_env_epoch(parse_opts(args.opt), os.environ)
        if args.no_cache:
            attrs["no-cache"] = ""
        session = _client_session(args, outputs)
        exporters = [(o.type, {k: v for k, v in o.attrs.items() if not (k == "dest" and o.type in CLIENT_SIDE_EXPORTERS)})
                     for o in outputs]
        opts = SolveOptions(definition=definition, frontend=args.frontend, frontend_attrs=attrs,
                            exporters=exporters, entitlements=args.allow, session_id=session.session_id,
                            cache_exports=parse_cache_options(args.export_cache, "--export-cache"),
                            cache_imports=parse_cache_options(args.import_cache, "--import-cache"))
    except BaseException:
        connecting.cancel()
        await asyncio.gather(connecting, return_exceptions=True)
        if not connecting.cancelled() and connecting.exception() is None:
            await connecting.result()[0].channel.close()
        raise
    preparing = asyncio.ensure_future(session.prepare())
    try:
        client, _workers = await connecting
    except BaseException:
        preparing.cancel()
        await session.close()
        raise
    session_task = asyncio.ensure_future(session.run(client.channel))
    progress = ProgressWriter()
    solving = asyncio.ensure_future(run_solve(client, opts, progress))
    shown = None
    try:
        await _let_go()
        from pybuildkit.appliance.progressui import display, make_printer  # while the daemon solves

        shown = asyncio.ensure_future(display(progress.subscribe(), make_printer(args.progress, sys.stderr)))
        _collect_from_now_on()
        try:
            response = await solving
        finally:
            progress.close()
            await shown
    finally:
        solving.cancel()
        await session.close()
        try:
            await asyncio.wait_for(session_task, 5)
        except (asyncio.TimeoutError, asyncio.CancelledError):
            pass
        await client.channel.close()
    if CHECK_RESULT_TEXT in response:  # --opt method=check: the report is the result
        return _print_check(response)
    _write_metadata(args, response, opts.ref)
    return 0


def _collect_from_now_on() -> None:
    """The start-up's objects (modules, classes, descriptors) live until the process exits:
    the garbage collector stays off while they are made (`entry`) and never scans them again;
    what the build itself allocates is collected as usual."""
    if not gc.isenabled():  # off since entry()
        gc.freeze()
        gc.enable()


async def _let_go() -> None:
    """Two turns of the loop: a grpc.aio call started just before is then in grpc's core, which
    sends it and takes the answer in its own threads while this thread goes on."""
    import asyncio

    await asyncio.sleep(0)
    await asyncio.sleep(0)


def _print_check(response: dict[str, str]) -> int:
    """The checks' report, then buildx's closing line; non-zero when a check failed."""
    from pybuildkit.appliance.outputs import CHECK_RESULT_STATUS, CHECK_RESULT_TEXT

    report = response[CHECK_RESULT_TEXT]
    count = report.count("\nWARNING: ")
    sys.stdout.write(report)
    sys.stdout.write("Check complete, no warnings found.\n" if not count else
                     f"Check complete, {count} warning has been found!\n" if count == 1 else
                     f"Check complete, {count} warnings have been found!\n")
    sys.stdout.flush()
    return 1 if response.get(CHECK_RESULT_STATUS, "0") != "0" else 0


def _client_session(args: argparse.Namespace, outputs):
    """What this client serves the daemon: its directories, secrets, agents, credentials and
    the places where outputs land (buildctl keeps `dest` on the client too)."""
    from pybuildkit.appliance.session.client import ClientSession, OutputTarget
    from pybuildkit.worker.registry.auth import DockerConfigCredentials

    from pybuildkit.appliance.cli.checks import output_place

    targets = []
    for output in outputs:
        place = output_place(output.type, output.attrs)
        if place.kind == "dir":
            targets.append(OutputTarget("dir", str(Path(place.dest).resolve())))
        elif place.kind == "file":
            dest = place.dest or "-"
            targets.append(OutputTarget("file", dest if dest == "-" else str(Path(dest).resolve())))
        else:
            targets.append(None)
    from pybuildkit.worker.providers import OCI_LAYOUT_DIR_PREFIX

    dirs = parse_locals(args.local)
    dirs.update({OCI_LAYOUT_DIR_PREFIX + name: path
                 for name, path in parse_locals(args.oci_layout, "--oci-layout").items()})
    import hashlib
    import json

    # one key per machine and set of client directories, so a rebuild reuses the daemon's
    # mirror of them and only changed files travel (BuildKit keys mirrors by the shared key)
    named = sorted((name, str(path)) for name, path in dirs.items())
    shared_key = hashlib.sha256(json.dumps([os.uname().nodename, named]).encode()).hexdigest()[:32]
    return ClientSession(shared_key=shared_key, dirs=dirs, secrets=parse_secrets(args.secret), ssh=parse_ssh(args.ssh),
                         credentials=DockerConfigCredentials(), outputs=targets)


async def _du(args: argparse.Namespace, address: str) -> int:
    from pybuildkit.appliance.cli.usage_output import print_table, print_totals, print_verbose

    client, _ = await _connected(args, address)
    try:
        response = await client.disk_usage(args.filter)
    finally:
        await client.channel.close()
    records = sorted(response.record, key=lambda r: r.Size, reverse=True)
    if args.verbose:
        print_verbose(records, sys.stdout)
    else:
        print_table(records, sys.stdout)
        print(file=sys.stdout)
    print_totals(records, sys.stdout)
    return 0


async def _prune(args: argparse.Namespace, address: str) -> int:
    from pybuildkit.appliance.api.proto import control_pb2 as cpb
    from pybuildkit.appliance.cli.usage_output import print_totals, print_verbose

    request = cpb.PruneRequest(filter=args.filter, all=args.all,
                               keepDuration=int(parse_duration(args.keep_duration, "--keep-duration") * 1e9),
                               reservedSpace=int(args.keep_storage * 1e6))
    client, _ = await _connected(args, address)
    removed = []
    try:
        async for record in client.prune(request):
            removed.append(record)
    finally:
        await client.channel.close()
    if args.verbose:
        print_verbose(removed, sys.stdout)
    print_totals(removed, sys.stdout, reclaimable=False)
    return 0


async def _debug(args: argparse.Namespace, address: str) -> int:
    client, workers = await _connected(args, address)
    try:
        if args.debug_command == "info":
            info = await client.info()
            v = info.buildkitVersion
            print(f"BuildKit:\t{v.package} {v.version} {v.revision}")
            return 0
    finally:
        await client.channel.close()
    print(f"{'ID':<28}PLATFORMS")
    for record in workers.record:
        platforms = ",".join("/".join(x for x in (p.OS, p.Architecture, p.Variant) if x) for p in record.platforms)
        print(f"{record.ID:<28}{platforms}")
        if getattr(args, "verbose", False):
            for key in sorted(record.Labels):
                print(f"  {key}:\t{record.Labels[key]}")
            for i, policy in enumerate(record.GCPolicy):
                print(f"  GC policy {i + 1}: all={str(policy.all).lower()} filters={list(policy.filters)} "
                      f"keepDuration={policy.keepDuration // 1_000_000_000}s reservedSpace={policy.reservedSpace} "
                      f"maxUsedSpace={policy.maxUsedSpace} minFreeSpace={policy.minFreeSpace}")
    return 0


COMMANDS = {"build": _remote_build, "b": _remote_build, "du": _du, "prune": _prune, "debug": _debug}


def _start_private_daemon(args: argparse.Namespace) -> DaemonProcess | None:
    """Flag mistakes fail before a daemon is dialled or started; a --daemonless daemon starts
    before this process imports asyncio, grpc and the rest, so its start overlaps them."""
    if COMMANDS[args.command] is _remote_build:
        from pybuildkit.appliance.cli.checks import check_build_flags

        check_build_flags(args, parse_outputs(args.output), stdout_is_tty=sys.stdout.isatty())
    if not args.daemonless:
        return None
    from pybuildkit.appliance.client.daemon_process import start_daemon_process

    return start_daemon_process(root=args.root, config=args.config, debug=args.debug)


async def _run(args: argparse.Namespace, started: DaemonProcess | None) -> int:
    command = COMMANDS[args.command]
    if started is None:
        return await command(args, args.addr)
    from pybuildkit.appliance.client.ephemeral import ephemeral_daemon

    async with ephemeral_daemon(started, root=args.root, meanwhile=_import_client) as address:
        return await command(args, address)


def _import_client() -> None:
    """What a command imports as it dials (grpc, protobuf, the session's services): done while
    a --daemonless daemon starts instead of after it is ready."""
    import pybuildkit.appliance.client.control  # noqa: F401
    import pybuildkit.appliance.client.solve  # noqa: F401
    import pybuildkit.appliance.session.client  # noqa: F401


def _print_error(exc: BuildError) -> None:
    excerpt = getattr(exc, "excerpt", None)
    if callable(excerpt) and excerpt():
        print(excerpt(), file=sys.stderr)
    # a failed step's last output lines were shown by the progress display (` > [2/2] RUN ...:`)
    if type(exc).__name__ == "UsageError":  # a flag mistake: nothing was solved
        print(f"error: {exc.message}", file=sys.stderr)
    else:
        print(f"error: failed to solve: {exc.message}", file=sys.stderr)
    if exc.hint:
        print(f"hint: {exc.hint}", file=sys.stderr)


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        started = _start_private_daemon(args)
    except BuildError as exc:
        _print_error(exc)
        return 1
    import asyncio  # only now: see _start_private_daemon

    loop = asyncio.new_event_loop()
    task = loop.create_task(_run(args, started))
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


def entry() -> None:
    """The `pybuildctl` command: exits without the interpreter's teardown (grpc's threads, module
    clean-up), which costs ~60 ms, a sixth of a no-op rebuild; every file is closed by then."""
    gc.disable()  # until the build is under way: see _collect_from_now_on
    code = main()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


if __name__ == "__main__":
    entry()
