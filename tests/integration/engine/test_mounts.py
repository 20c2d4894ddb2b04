"""Every LLB mount type and option, observed from inside a real container."""
from __future__ import annotations

import subprocess
import threading
from pathlib import Path

import pytest

from pybuildkit.solver.llb import builder as llb
from pybuildkit.solver.pb import ops_pb2 as pb


def _base(base_image: str) -> llb.State:
    return llb.image(base_image).add_env("PATH", llb.DEFAULT_PATH)


def _export(state: llb.State) -> bytes:
    return state.marshal().SerializeToString()


def _sh(script: str) -> list[str]:
    return ["/bin/sh", "-c", script]


def test_readonly_bind_with_selector(pybuildctl, base_image, tmp_path) -> None:
    src = llb.scratch().file(llb.mkdir("/sub", 0o755).mkfile("/sub/in.txt", 0o644, b"bound\n"))
    run = _base(base_image).run(
        _sh("cat /in/in.txt > /out/read.txt; (echo x > /in/new) 2>/dev/null && echo writable > /out/ro.txt || echo readonly > /out/ro.txt"),
        mounts=[llb.Mount("/in", src, selector="/sub", readonly=True), llb.Mount("/out", llb.scratch())])
    pybuildctl(["--output", f"type=local,dest={tmp_path}"], stdin=_export(run.get_mount("/out")))
    assert (tmp_path / "read.txt").read_text() == "bound\n"
    assert (tmp_path / "ro.txt").read_text() == "readonly\n"


def test_writable_bind_output_and_rootfs_output_are_separate(pybuildctl, base_image, tmp_path) -> None:
    run = _base(base_image).run(_sh("echo in-out > /out/o.txt; echo in-root > /r.txt"),
                                mounts=[llb.Mount("/out", llb.scratch())])
    out_dir, root_dir = tmp_path / "out", tmp_path / "root"
    pybuildctl(["--output", f"type=local,dest={out_dir}"], stdin=_export(run.get_mount("/out")))
    pybuildctl(["--output", f"type=local,dest={root_dir}"], stdin=_export(run.root()))
    assert sorted(p.name for p in out_dir.iterdir()) == ["o.txt"]
    assert (root_dir / "r.txt").read_text() == "in-root\n"
    assert not (root_dir / "out" / "o.txt").exists()


def test_cache_mount_survives_across_builds(pybuildctl, base_image, tmp_path) -> None:
    def build(nonce: str, dest: Path) -> None:
        run = _base(base_image).run(
            _sh(f"echo {nonce} >> /cache/log; cp /cache/log /out/log"),
            mounts=[llb.Mount("/cache", cache_id="survives"), llb.Mount("/out", llb.scratch())])
        pybuildctl(["--output", f"type=local,dest={dest}"], stdin=_export(run.get_mount("/out")))

    build("first", tmp_path / "a")
    build("second", tmp_path / "b")
    assert (tmp_path / "b" / "log").read_text() == "first\nsecond\n"


def test_locked_cache_mount_serialises_its_users(pybuildctl, base_image, tmp_path) -> None:
    outs = []
    for i in range(2):
        run = _base(base_image).run(
            _sh(f"echo start-{i} >> /cache/events; sleep 1; echo end-{i} >> /cache/events; cp /cache/events /out/events-{i}"),
            mounts=[llb.Mount("/cache", cache_id="locked-test", cache_sharing=pb.LOCKED),
                    llb.Mount("/out", llb.scratch())])
        outs.append(run.get_mount("/out"))
    merged = llb.merge(outs)
    pybuildctl(["--output", f"type=local,dest={tmp_path}"], stdin=_export(merged))
    # whichever step ran second saw both; the order between the two is free
    events = max(((tmp_path / f"events-{i}").read_text().split() for i in range(2)), key=len)
    assert len(events) >= 4
    # serialised: each start is immediately followed by its own end
    pairs = list(zip(events[0::2], events[1::2]))
    assert all(s.replace("start", "") == e.replace("end", "") for s, e in pairs), events


def test_tmpfs_mount_with_size(pybuildctl, base_image, tmp_path) -> None:
    run = _base(base_image).run(_sh("grep ' /scratch ' /proc/mounts > /out/mounts; echo t > /scratch/t"),
                                mounts=[llb.Mount("/scratch", tmpfs=True, tmpfs_size=8 << 20),
                                        llb.Mount("/out", llb.scratch())])
    pybuildctl(["--output", f"type=local,dest={tmp_path}"], stdin=_export(run.get_mount("/out")))
    line = (tmp_path / "mounts").read_text()
    assert line.startswith("tmpfs /scratch tmpfs") and "size=8192k" in line


def test_secret_is_readable_with_its_mode_and_absent_from_output(pybuildctl, base_image, tmp_path) -> None:
    secret = tmp_path / "token"
    secret.write_text("s3cr3t-value")
    run = _base(base_image).run(
        _sh("stat -c '%a %u' /run/secrets/tok > /stat.txt; cat /run/secrets/tok | wc -c > /len.txt"),
        secrets=[llb.SecretMount("tok", target="/run/secrets/tok", uid=1, mode=0o440)])
    out = tmp_path / "out"
    pybuildctl(["--secret", f"id=tok,src={secret}", "--output", f"type=local,dest={out}"],
               stdin=_export(run.root()))
    assert (out / "stat.txt").read_text().strip() == "440 1"
    assert (out / "len.txt").read_text().strip() == "12"
    assert not (out / "run" / "secrets" / "tok").exists()
    leaked = subprocess.run(["grep", "-rl", "s3cr3t-value", str(out), str(pybuildctl.default_root)],
                            capture_output=True, text=True)
    assert leaked.stdout == "", f"secret found in: {leaked.stdout}"


def test_missing_required_secret_is_a_clear_error(pybuildctl, base_image) -> None:
    run = _base(base_image).run(_sh("true"), secrets=[llb.SecretMount("nope", target="/run/secrets/nope")])
    result = pybuildctl([], stdin=_export(run.root()), check=False)
    assert result.returncode == 1
    assert "secret nope: not found" in result.stderr


def test_ssh_agent_socket_is_forwarded(pybuildctl, base_image, tmp_path) -> None:
    agent_dir = tmp_path / "agent"
    agent_dir.mkdir()
    sock = agent_dir / "agent.sock"
    proc = subprocess.Popen(["ssh-agent", "-D", "-a", str(sock)], stdout=subprocess.DEVNULL)
    try:
        for _ in range(50):
            if sock.exists():
                break
            threading.Event().wait(0.05)
        run = _base(base_image).run(_sh('test -S "$SSH_AUTH_SOCK" && echo "$SSH_AUTH_SOCK" > /ssh.txt'),
                                    ssh=[llb.SSHMount()])
        out = tmp_path / "out"
        pybuildctl(["--ssh", f"default={sock}", "--output", f"type=local,dest={out}"],
                   stdin=_export(run.root()))
        assert (out / "ssh.txt").read_text().strip() == "/run/buildkit/ssh_agent.0"
    finally:
        proc.terminate()
        proc.wait()


def test_network_none_has_only_loopback(pybuildctl, base_image, tmp_path) -> None:
    state = _base(base_image).network(pb.NONE)
    run = state.run(_sh("tail -n +3 /proc/net/dev | cut -d: -f1 | tr -d ' ' > /ifaces"))
    pybuildctl(["--output", f"type=local,dest={tmp_path}"], stdin=_export(run.root()))
    assert (tmp_path / "ifaces").read_text().split() == ["lo"]


def test_network_host_needs_the_entitlement(pybuildctl, base_image) -> None:
    run = _base(base_image).network(pb.HOST).run(_sh("true"))
    result = pybuildctl([], stdin=_export(run.root()), check=False)
    assert result.returncode == 1
    assert "network.host is not allowed" in result.stderr


def test_user_by_name_with_groups(pybuildctl, base_image, tmp_path) -> None:
    run = _base(base_image).user("mail").run(_sh("id > /tmp/id.txt")).root()
    pybuildctl(["--output", f"type=local,dest={tmp_path}"], stdin=_export(run))
    assert (tmp_path / "tmp" / "id.txt").read_text().startswith("uid=8(mail) gid=8(mail)")


def test_cwd_env_and_hostname(pybuildctl, base_image, tmp_path) -> None:
    state = _base(base_image).add_env("GREETING", "hi there").dir("/work").hostname("builder-x")
    run = state.run(_sh('echo "$GREETING $(pwd) $(hostname)" > /work/out.txt')).root()
    pybuildctl(["--output", f"type=local,dest={tmp_path}"], stdin=_export(run))
    assert (tmp_path / "work" / "out.txt").read_text() == "hi there /work builder-x\n"


def test_foreign_architectures_run_under_qemu(pybuildctl, base_image, tmp_path) -> None:
    from pybuildkit.solver.platforms import parse_platform

    if not Path("/proc/sys/fs/binfmt_misc/qemu-aarch64").exists():
        pytest.skip("no qemu-aarch64 binfmt handler registered on this host")
    outs = []
    for platform in ("linux/arm64", "linux/s390x"):
        p = parse_platform(platform)
        st = llb.image(base_image, platform=p).add_env("PATH", llb.DEFAULT_PATH)
        outs.append(st.run(_sh(f"uname -m > /out/{p.architecture}"), mounts=[llb.Mount("/out", llb.scratch())])
                    .get_mount("/out"))
    pybuildctl(["--output", f"type=local,dest={tmp_path}"], stdin=_export(llb.merge(outs)))
    assert (tmp_path / "arm64").read_text().strip() == "aarch64"
    assert (tmp_path / "s390x").read_text().strip() == "s390x"
