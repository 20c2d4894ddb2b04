"""pybuildkitd serves BuildKit's Control API over a real unix socket."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.integration.daemon.conftest import Daemon, start_daemon
from tests.integration.engine.conftest import llb_definition

pytestmark = pytest.mark.integration


def test_debug_workers_lists_the_native_platform(ctl) -> None:
    out = ctl("debug", "workers", "-v").stdout.decode()
    assert "linux/amd64" in out.splitlines()[1]
    assert "org.mobyproject.buildkit.worker.executor:\toci" in out
    assert "GC policy 1: all=false filters=['type==source.local'" in out


def test_the_probed_platforms_are_logged_and_remembered_in_the_root(daemon: Daemon, ctl) -> None:
    ctl("debug", "workers")  # its answer waits for the probe, which the daemon does not wait for to serve
    assert "platforms linux/amd64" in daemon.log()
    assert json.loads((daemon.root / "platforms.json").read_text())["platforms"][0] == "linux/amd64"


def test_on_a_hybrid_cgroup_host_the_daemon_hides_the_unified_mount_in_its_own_namespace(daemon: Daemon) -> None:
    """crun then runs as a plain exec for every step, not under a namespace made per call."""
    from pybuildkit.worker.executor.runtime import UNIFIED_MOUNT, CgroupLayout, cgroup_layout

    log = daemon.log()
    if cgroup_layout() == CgroupLayout.HYBRID:
        assert f"{UNIFIED_MOUNT} hidden in the daemon's own mount namespace" in log
        assert "crun runs in a private mount namespace" not in log
        assert cgroup_layout() == CgroupLayout.HYBRID  # the host's mounts are as they were
    else:
        assert "hidden in the daemon's own mount namespace" not in log


def test_configured_gc_policies_replace_buildkits_defaults(builder_config: Path, tmp_path: Path) -> None:
    config = tmp_path / "pybuildkitd.toml"
    config.write_text(builder_config.read_text() + '\n[[worker.oci.gcpolicy]]\nall = true\nkeepDuration = "2h"\n'
                      'reservedSpace = "1GB"\n')
    (tmp_path / "run").mkdir()
    daemon = start_daemon(tmp_path / "root", config, tmp_path / "run")
    try:
        out = subprocess.run([sys.executable, "-m", "pybuildkit.appliance.cli.main", "--addr", daemon.address,
                              "debug", "workers", "-v"], capture_output=True, text=True, timeout=60).stdout
    finally:
        daemon.stop()
    policies = [line for line in out.splitlines() if "GC policy" in line]
    assert policies == ["  GC policy 1: all=true filters=[] keepDuration=7200s reservedSpace=1000000000 "
                        "maxUsedSpace=0 minFreeSpace=0"]


def test_debug_info_reports_a_version(ctl) -> None:
    assert ctl("debug", "info").stdout.decode().startswith("BuildKit:\t")


def test_an_llb_definition_builds_through_the_daemon(ctl, base_image: str, tmp_path: Path) -> None:
    definition = llb_definition("multiarch_llb.py", "--image", base_image, "--branches", "2", "--nonce", "daemon")
    dest = tmp_path / "out"
    ctl("build", "--progress", "plain", "--output", f"type=local,dest={dest}", stdin=definition)
    assert sorted(p.name for p in dest.iterdir()) == ["branch-0.txt", "branch-1.txt"]
    assert "branch 0 on x86_64 daemon" in (dest / "branch-0.txt").read_text()


def test_a_rebuild_is_cached(ctl, base_image: str, tmp_path: Path) -> None:
    definition = llb_definition("multiarch_llb.py", "--image", base_image, "--branches", "1", "--nonce", "again")
    ctl("build", "--output", f"type=local,dest={tmp_path / 'a'}", stdin=definition)
    second = ctl("build", "--progress", "rawjson", "--output", f"type=local,dest={tmp_path / 'b'}", stdin=definition)
    vertices: dict[str, dict] = {}
    for line in second.stderr.decode().splitlines():
        if line.startswith("{"):
            for v in json.loads(line).get("vertexes", []):
                vertices.setdefault(v["digest"], {}).update(v)
    runs = [v for v in vertices.values() if v["name"].startswith("branch 0")]
    assert runs and all(v.get("cached") for v in runs)


def test_a_failing_step_reports_buildkits_message_and_exit_code(ctl, base_image: str) -> None:
    from pybuildkit.solver.llb import builder as llb

    state = llb.image(base_image).run(["/bin/sh", "-c", "echo about-to-fail; exit 3"]).root()
    proc = ctl("build", "--progress", "plain", stdin=state.marshal().SerializeToString(), check=False)
    err = proc.stderr.decode()
    assert proc.returncode == 1
    assert 'process "/bin/sh -c echo about-to-fail; exit 3" did not complete successfully: exit code: 3' in err
    assert "about-to-fail" in err


def test_a_second_daemon_on_the_same_root_names_the_holder(daemon: Daemon, tmp_path: Path) -> None:
    proc = subprocess.run([sys.executable, "-m", "pybuildkit.appliance.daemon.main", "--root", str(daemon.root),
                           "--addr", f"unix://{tmp_path / 'other.sock'}"], capture_output=True, timeout=60)
    assert proc.returncode == 1
    assert f"is in use by process {daemon.proc.pid}" in proc.stderr.decode()


def test_a_misspelled_config_key_is_an_error_naming_key_and_file(tmp_path: Path) -> None:
    config = tmp_path / "pybuildkitd.toml"
    config.write_text('[worker.oci]\nsnapshoter = "native"\n')
    proc = subprocess.run([sys.executable, "-m", "pybuildkit.appliance.daemon.main", "--root", str(tmp_path / "r"),
                           "--config", str(config), "--addr", f"unix://{tmp_path / 's.sock'}"],
                          capture_output=True, timeout=60)
    assert proc.returncode == 1
    assert f"{config}: unknown key 'worker.oci.snapshoter' (did you mean 'snapshotter'?)" in proc.stderr.decode()


def test_sigterm_stops_the_daemon_cleanly_and_removes_its_socket(builder_config: Path, tmp_path: Path) -> None:
    d = start_daemon(tmp_path / "root", builder_config, tmp_path)
    assert d.stop() == 0
    assert not d.socket_path.exists()
    assert "stopped" in d.log()


def test_du_lists_records_and_prune_empties_the_cache(ctl, daemon: Daemon, base_image: str, tmp_path: Path) -> None:
    definition = llb_definition("multiarch_llb.py", "--image", base_image, "--branches", "2", "--nonce", "du")
    ctl("build", "--output", f"type=local,dest={tmp_path / 'o'}", stdin=definition)
    du = ctl("du", "--verbose").stdout.decode()
    assert "Description:\tmount /out from exec" in du or "Description:\t" in du
    assert "Total:\t\t" in du and "Total:\t\t0B" not in du
    layers = daemon.root / "snapshots" / "layers"
    before = len(list(layers.iterdir()))
    pruned = ctl("prune", "--all", "--verbose").stdout.decode()
    assert pruned.count("ID:\t\t") >= 2
    assert len(list(layers.iterdir())) < before
    assert "Total:\t\t0B" in ctl("du").stdout.decode()
    # the cache is really gone: the same build runs its steps again
    again = ctl("build", "--progress", "plain", "--output", f"type=local,dest={tmp_path / 'p'}", stdin=definition)
    assert "CACHED" not in again.stderr.decode().split("branch 0")[1].split("\n")[0]


def test_a_rebuild_sends_only_the_files_that_changed(ctl, base_image: str, tmp_path: Path) -> None:
    """The daemon keeps a mirror of the client's context keyed by the session's shared key
    (BuildKit's `<name>:<sharedkeyhint>:<shared key>`): a new session of the same client
    re-sends only files whose metadata changed (compat README §4)."""
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    (ctx / "Dockerfile").write_text(f"FROM {base_image}\nCOPY . /ctx/\n")
    (ctx / "big.bin").write_bytes(b"x" * 1_000_000)
    (ctx / "small.txt").write_text("one\n")

    def transferred() -> int:
        proc = ctl("build", "--frontend", "dockerfile.v0", "--local", f"context={ctx}", "--local",
                   f"dockerfile={ctx}", "--progress", "rawjson")
        total = 0
        for line in proc.stderr.decode().splitlines():
            if line.startswith("{"):
                for status in json.loads(line).get("statuses", []):
                    if status.get("id") == "transferring context" and status.get("completed"):
                        total = int(status.get("current", 0))
        return total

    assert transferred() >= 1_000_000
    assert transferred() == 0
    (ctx / "small.txt").write_text("two, longer\n")
    assert 0 < transferred() < 1_000
