"""Upstream buildctl's recorded builds that use the session (contexts, secrets, ssh, outputs),
replayed against one pybuildkitd in the order they were captured (COMMANDS.md), so that its
cache carries over from one build to the next as buildkitd's did. The recorded client side is
played by pybuildctl's ClientSession serving the recorded contexts; every call the daemon makes
into the session is noted and compared with what buildkitd asked buildctl: methods and order,
metadata, the files each DiffCopy requests, the message types, and the results."""
from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import re
import shutil
import subprocess
import tarfile
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import grpc
import pytest

from pybuildkit.appliance.api.proto import control_pb2 as cpb
from pybuildkit.appliance.session import services as svc
from pybuildkit.appliance.session.client import OutputTarget
from pybuildkit.appliance.session.proto import fsutil_pb2 as fpb
from pybuildkit.appliance.session.proto import session_pb2 as spb
from pybuildkit.worker.providers import SecretSources, SSHAgents
from tests.fixtures.transcripts import (Call, RecordingSession, Replayed, Served, inner, outer, recorded,
                                        replay, restore_listing, values)
from tests.integration.daemon.conftest import Daemon, start_mirrored_daemon

pytestmark = pytest.mark.integration

#: COMMANDS.md order of the scenarios that use the session (s5-s7 in between touch no context)
CHAIN = ("s2_dockerfile_local", "s3_dockerfile_incremental", "s4a_oci_export", "s4b_image_push",
         "s8_ssh_forward", "s2b_copy_all_context", "s3b_metadata_rule")
CONTEXT = {"s2_dockerfile_local": "ctx-s2", "s3_dockerfile_incremental": "ctx-s3", "s4a_oci_export": "ctx-s3",
           "s4b_image_push": "ctx-s3", "s8_ssh_forward": "ctx8", "s2b_copy_all_context": "ctx-s3",
           "s3b_metadata_rule": "ctx-s3b"}
FILESYNC_KEYS = (svc.KEY_DIR_NAME, svc.KEY_FOLLOW, svc.KEY_EXCLUDE, svc.KEY_INCLUDE)
BUILD_TIMEOUT_S = 120


@dataclass
class Run:
    calls: list[Call]  # the recording
    out: Replayed
    served: list[Served]  # what our daemon asked the client, in order
    dest: Path

    def recorded_outer(self, method: str) -> Call:
        return outer(self.calls)["moby.buildkit.v1." + method]


def _key(sock: Path, work: Path) -> None:
    """An ed25519 key with the recording's comment, so the agent's answer has its 81 bytes."""
    key = work / "id_ed25519"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "capture-throwaway", "-f", str(key)],
                   check=True, timeout=30)
    for _ in range(250):
        if sock.exists():
            break
        subprocess.run(["sleep", "0.02"], check=True)
    subprocess.run(["ssh-add", str(key)], env={"SSH_AUTH_SOCK": str(sock), "PATH": "/usr/bin:/bin"},
                   check=True, capture_output=True, timeout=30)


class Chain:
    """The recorded builds, each run once and only after those it followed at capture time."""

    def __init__(self, daemon: Daemon, shared: Path, registry_host: str, work: Path, agent: Path) -> None:
        self.daemon, self.shared, self.registry_host, self.work, self.agent = daemon, shared, registry_host, work, agent
        self.contexts = work / "contexts"
        self.contexts.mkdir()
        subprocess.run(["tar", "-xzf", str(shared / "compat" / "contexts.tar.gz"), "-C", str(self.contexts)],
                       check=True, timeout=30)  # keeps the mtimes, modes and the symlink
        self.runs: dict[str, Run] = {}
        self.failed: dict[str, str] = {}

    def run(self, name: str) -> Run:
        for step in CHAIN[:CHAIN.index(name) + 1]:
            if step in self.failed:
                pytest.fail(f"{step}, which {name} follows, failed: {self.failed[step]}")
            if step not in self.runs:
                try:
                    self.runs[step] = self._replay(step)
                except BaseException as exc:
                    self.failed[step] = repr(exc)[:2000]
                    raise
        return self.runs[name]

    def _replay(self, name: str) -> Run:
        calls = recorded(self.shared, name)
        ctx = self.work / name / "ctx"
        shutil.copytree(self.contexts / CONTEXT[name], ctx, symlinks=True)
        restore_listing(ctx, calls)
        dest = self.work / name / "out"
        request = cpb.SolveRequest.FromString(outer(calls)["moby.buildkit.v1.Control/Solve"].requests[0])
        outputs: list[OutputTarget | None] = []
        for exporter in request.Exporters:
            if exporter.Type == "local":
                outputs.append(OutputTarget("dir", str(dest)))
            elif exporter.Type == "oci":
                dest.mkdir(parents=True)
                outputs.append(OutputTarget("file", str(dest / "image.oci.tar")))
            else:
                outputs.append(None)
            if "name" in exporter.Attrs:  # the push goes to the test registry instead of 127.0.0.1:5000
                exporter.Attrs["name"] = self.pushed_name(exporter.Attrs["name"])
        if "name" in request.ExporterAttrsDeprecated:
            request.ExporterAttrsDeprecated["name"] = self.pushed_name(request.ExporterAttrsDeprecated["name"])
        offered = set(values(outer(calls)["moby.buildkit.v1.Control/Session"].headers, svc.HEADER_METHOD))
        session = RecordingSession(
            dirs={"context": ctx, "dockerfile": ctx}, outputs=outputs,
            secrets=SecretSources({"tok": self.contexts / "tok.secret"}) if svc.SECRETS_GET in offered else None,
            ssh=SSHAgents({"default": self.agent}) if svc.SSH_FORWARD in offered else None)
        out = asyncio.run(asyncio.wait_for(replay(self.daemon.socket_path, outer(calls), session, request),
                                           BUILD_TIMEOUT_S))
        assert out.code == grpc.StatusCode.OK, f"{name}: {out.details}\n{self.daemon.log()[-4000:]}"
        return Run(calls, out, session.served, dest)

    def pushed_name(self, name: str) -> str:
        return name.replace("127.0.0.1:5000", self.registry_host, 1)


@pytest.fixture(scope="module")
def chain(registry_host: str, shared_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Chain]:
    if not (shared_dir / "compat" / "contexts.tar.gz").exists():
        pytest.skip("no compat contexts.tar.gz")
    if shutil.which("ssh-agent") is None:
        pytest.skip("s8 needs ssh-agent (openssh-client)")
    work = tmp_path_factory.mktemp("replay")
    sock = work / "agent.sock"
    agent = subprocess.Popen(["ssh-agent", "-D", "-a", str(sock)], stdout=subprocess.DEVNULL)
    daemon = start_mirrored_daemon(registry_host, tmp_path_factory)
    try:
        _key(sock, work)
        yield Chain(daemon, shared_dir, registry_host, work, sock)
    finally:
        daemon.stop()
        agent.terminate()
        agent.wait(10)


# -- what the daemon asks the client, call by call ---------------------------------------------


def _agent_bytes(messages: list[bytes]) -> bytes:
    return b"".join(spb.BytesMessage.FromString(m).data for m in messages)


def _shape(packets: list[fpb.Packet]) -> list[str]:
    """Packet types with repeats collapsed: STAT, DATA, FIN for a local export."""
    out: list[str] = []
    for p in packets:
        name = fpb.Packet.PacketType.Name(p.type)
        if not out or out[-1] != name:
            out.append(name)
    return out


def _filesync(headers: dict[str, list[str]] | dict[str, object]) -> dict[str, list[str]]:
    return {key: sorted(values(headers, key)) for key in FILESYNC_KEYS}


def _exporter_metadata(headers: dict[str, list[str]] | dict[str, object]) -> tuple[list[str], list[str]]:
    return values(headers, svc.KEY_EXPORTER_ID), sorted(k for k in headers if k.startswith("exporter-md-"))


def _listing(messages: list[bytes]) -> list[fpb.Stat]:
    packets = (fpb.Packet.FromString(m) for m in messages)
    return [p.stat for p in packets if p.type == fpb.Packet.PACKET_STAT and p.HasField("stat")]


def _requested(daemon_side: list[bytes], client_side: list[bytes]) -> list[str]:
    """The paths the daemon REQs, in order (an id is the entry's position in the listing)."""
    listing = _listing(client_side)
    packets = [fpb.Packet.FromString(m) for m in daemon_side]
    return [listing[p.ID].path for p in packets if p.type == fpb.Packet.PACKET_REQ]


def _is_copy_context(call: Call | Served) -> bool:
    """The main context transfer (after LLBBridge/Return), not the Dockerfile or .dockerignore load."""
    headers = call.metadata if isinstance(call, Served) else call.headers
    return values(headers, svc.KEY_DIR_NAME) == ["context"] and values(headers, svc.KEY_FOLLOW) != [".dockerignore"]


def _compare(ours: Served, theirs: Call) -> None:
    method = theirs.method
    if method == svc.FILESYNC_DIFFCOPY:
        if _is_copy_context(theirs):
            # our frontend asks for the whole context where dockerfile2llb names the COPY sources
            # as followpaths (see test_copy_sources_travel_as_followpaths): compare the rest, and
            # the entries buildkitd's listing had
            keep = (svc.KEY_DIR_NAME, svc.KEY_EXCLUDE, svc.KEY_INCLUDE)
            assert {k: v for k, v in _filesync(ours.metadata).items() if k in keep} == {
                k: v for k, v in _filesync(theirs.headers).items() if k in keep}
        else:
            assert _filesync(ours.metadata) == _filesync(theirs.headers)
        recorded_paths = {s.path for s in _listing(theirs.responses)}
        # the replay is faithful: our client lists each entry exactly as buildctl did
        assert [s for s in _listing(ours.responses) if s.path in recorded_paths] == _listing(theirs.responses)
        # which files the daemon re-requests, in which order, then FIN
        assert [p for p in _requested(ours.requests, ours.responses) if p in recorded_paths] == _requested(
            theirs.requests, theirs.responses)
        assert ours.packets()[-1].type == fpb.Packet.PACKET_FIN
    elif method == svc.FILESEND_DIFFCOPY:
        assert _exporter_metadata(ours.metadata) == _exporter_metadata(theirs.headers)
        packets_recorded = theirs.requests[0][:1] in (b"\x08", b"\x12", b"\x1a", b"\x22")
        packets_ours = ours.requests[0][:1] in (b"\x08", b"\x12", b"\x1a", b"\x22")
        assert packets_ours == packets_recorded  # fsutil Packets for local, BytesMessages for oci
        if packets_recorded:
            # the listing, the end of the listing, the files; the daemon's answering FIN comes
            # after our client (which sent its FIN and has all it needs) stopped reading
            recorded_packets = [fpb.Packet.FromString(m) for m in theirs.requests]
            assert _shape(ours.packets()) == _shape(recorded_packets)[:-1] == ["PACKET_STAT", "PACKET_DATA"]
    elif method == svc.SSH_FORWARD:
        assert values(ours.metadata, svc.KEY_SSH_ID) == values(theirs.headers, svc.KEY_SSH_ID)
        assert ours.requests[:1] == theirs.requests[:1]  # SSH_AGENTC_REQUEST_IDENTITIES
        # the agent's answer: its length prefix and the 81-byte identities answer (one key)
        assert _agent_bytes(ours.responses)[:4] == _agent_bytes(theirs.responses)[:4] == b"\x00\x00\x00\x51"
    else:  # GetSecret, CheckAgent: unary, same request bytes
        assert ours.requests == theirs.requests
        assert len(ours.responses) == len(theirs.responses) == 1


#: s2b: buildkitd kept one snapshot of `context` per client, which s8 had just replaced, so it
#: asked for every file again; ours keeps one per (client, filter), and without followpaths
#: (test_copy_sources_travel_as_followpaths) s2b's filter equals s2-s4b's, whose files it has
SNAPSHOT_PER_FILTER = pytest.mark.xfail(strict=True, reason="context snapshot kept per filter, see above")


@pytest.mark.parametrize("scenario", [pytest.param(s, marks=SNAPSHOT_PER_FILTER) if s == "s2b_copy_all_context"
                                      else s for s in CHAIN])
def test_the_daemon_asks_the_session_what_buildkitd_asked(chain: Chain, scenario: str) -> None:
    run = chain.run(scenario)
    theirs = [c for c in inner(run.calls) if c.method != svc.HEALTH_CHECK]
    ours = [s for s in run.served if s.method != svc.HEALTH_CHECK]
    assert [s.method for s in ours] == [c.method for c in theirs]
    for mine, recorded_call in zip(ours, theirs):
        _compare(mine, recorded_call)


@pytest.mark.parametrize("scenario", CHAIN)
def test_solve_and_status_answer_as_buildkitd_did(chain: Chain, scenario: str) -> None:
    run = chain.run(scenario)
    solve = cpb.SolveResponse.FromString(run.recorded_outer("Control/Solve").responses[0])
    assert run.out.solve is not None and set(run.out.solve.ExporterResponse) == set(solve.ExporterResponse)
    recorded_names = {v.name for m in run.recorded_outer("Control/Status").responses
                      for v in cpb.StatusResponse.FromString(m).vertexes}
    our_names = {v.name for s in run.out.statuses for v in s.vertexes}
    assert _steps(our_names) == _steps(recorded_names)
    assert all(v.HasField("completed") and not v.error for s in run.out.statuses[-1:] for v in s.vertexes)


def _steps(names: set[str]) -> set[str]:
    """Vertex names without the base image's digest (the test registry's busybox is another one)
    and without the stage name buildkitd puts in the step number of a stage with RUN --mount
    (`[stage-0 1/4]`; ours says `[1/4]`, see the report of issue #8)."""
    return {re.sub(r"^\[stage-\d+ ", "[", n.split("@sha256:")[0]) for n in names}


@pytest.mark.xfail(strict=True, reason="our dockerfile2llb sends the whole context (minus .dockerignore); "
                                       "BuildKit's names the COPY sources as followpaths")
def test_copy_sources_travel_as_followpaths(chain: Chain) -> None:
    run = chain.run("s2_dockerfile_local")
    theirs = next(c for c in inner(run.calls) if c.method == svc.FILESYNC_DIFFCOPY and _is_copy_context(c))
    ours = next(s for s in run.served if s.method == svc.FILESYNC_DIFFCOPY and _is_copy_context(s))
    assert _filesync(ours.metadata) == _filesync(theirs.headers)


# -- what came of it ---------------------------------------------------------------------------


def test_s2_local_export_writes_the_built_files_on_the_client(chain: Chain) -> None:
    run = chain.run("s2_dockerfile_local")
    assert (run.dest / "src" / "a.txt").read_text() == "alpha v1\n"
    assert (run.dest / "src" / "b.txt").read_text() == "bravo\n"
    assert (run.dest / "src" / "b.txt").stat().st_mode & 0o777 == 0o600
    assert (run.dest / "src" / "tok-len").read_bytes() == (chain.contexts / "tok.secret").read_bytes()
    assert (run.dest / "hi").read_text() == "hi\n"


def test_s3_changed_file_is_the_only_one_sent_again(chain: Chain) -> None:
    run = chain.run("s3_dockerfile_incremental")
    context = [s for s in run.served if s.method == svc.FILESYNC_DIFFCOPY][-1]
    assert "dir/b.txt" not in _requested(context.requests, context.responses)
    assert "a.txt" in _requested(context.requests, context.responses)
    assert (run.dest / "src" / "a.txt").read_text() == "alpha v2 changed\n"


def test_s4a_oci_tar_is_the_image_the_solve_response_names(chain: Chain) -> None:
    run = chain.run("s4a_oci_export")
    assert run.out.solve is not None
    response = run.out.solve.ExporterResponse
    send = next(s for s in run.served if s.method == svc.FILESEND_DIFFCOPY)
    assert send.metadata["exporter-md-containerimage.digest"] == [response["containerimage.digest"]]
    with tarfile.open(run.dest / "image.oci.tar") as tar:
        index = json.load(tar.extractfile("index.json"))  # type: ignore[arg-type]
        manifest_digest = index["manifests"][0]["digest"]
        manifest = json.load(tar.extractfile("blobs/sha256/" + manifest_digest.split(":")[1]))  # type: ignore[arg-type]
        assert json.load(tar.extractfile("oci-layout")) == {"imageLayoutVersion": "1.0.0"}  # type: ignore[arg-type]
    assert manifest_digest == response["containerimage.digest"]
    assert manifest["config"]["digest"] == response["containerimage.config.digest"]
    assert json.loads(base64.b64decode(response["containerimage.descriptor"]))["digest"] == manifest_digest


def test_s4a_steps_with_the_secret_are_cached_so_no_secret_is_asked(chain: Chain) -> None:
    run = chain.run("s4a_oci_export")
    assert svc.SECRETS_GET not in [s.method for s in run.served]
    assert any(v.cached for s in run.out.statuses for v in s.vertexes if "run/secrets/tok" in v.name)


def test_s4b_pushed_image_is_in_the_registry(chain: Chain) -> None:
    run = chain.run("s4b_image_push")
    assert run.out.solve is not None
    response = run.out.solve.ExporterResponse
    assert response["image.name"] == f"{chain.registry_host}/capture/x:1"
    req = urllib.request.Request(f"http://{chain.registry_host}/v2/capture/x/manifests/1", headers={
        "Accept": "application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.v2+json"})
    with urllib.request.urlopen(req, timeout=30) as resp:
        body = resp.read()
    assert "sha256:" + hashlib.sha256(body).hexdigest() == response["containerimage.digest"]
    assert json.loads(body)["config"]["digest"] == response["containerimage.config.digest"]


def test_s8_forwarded_agent_answers_the_program_in_the_container(chain: Chain) -> None:
    run = chain.run("s8_ssh_forward")
    logs = b"".join(log.msg for s in run.out.statuses for log in s.logs)
    assert b"agent reply type=12 len=81 nkeys=1" in logs


def test_s2b_whole_context_lists_the_symlink_and_sends_every_file(chain: Chain) -> None:
    run = chain.run("s2b_copy_all_context")
    context = [s for s in run.served if s.method == svc.FILESYNC_DIFFCOPY][-1]
    assert [(s.path, s.linkname) for s in _listing(context.responses) if s.linkname] == [("link-to-a", "a.txt")]
    logs = b"".join(log.msg for s in run.out.statuses for log in s.logs)
    assert b"link-to-a -> a.txt" in logs and b"ignored.txt" not in logs


def test_s3b_same_size_and_mtime_is_not_noticed_and_the_build_is_cached(chain: Chain) -> None:
    run = chain.run("s3b_metadata_rule")
    context = [s for s in run.served if s.method == svc.FILESYNC_DIFFCOPY][-1]
    assert _requested(context.requests, context.responses) == ["dir/b.txt"]  # mtime changed; a.txt's new content has the old size and mtime
    execs = [v for s in run.out.statuses for v in s.vertexes if v.name.startswith("[3/3] RUN")]
    assert execs and all(v.cached for v in execs if v.HasField("completed"))
