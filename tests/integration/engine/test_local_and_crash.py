"""Local sources key on content; a SIGKILL at any named point leaves a store that recovers."""
from __future__ import annotations

from pathlib import Path

import pytest

from pybuildkit.solver import faults
from pybuildkit.solver.llb import builder as llb


def _sh(script: str) -> list[str]:
    return ["/bin/sh", "-c", script]


def _selector_graph(base_image: str) -> bytes:
    """Each step mounts only its own file of the context (a read-only selected mount)."""
    base = llb.image(base_image).add_env("PATH", llb.DEFAULT_PATH)
    ctx = llb.local("context")
    outs = []
    for name in ("a", "b"):
        run = base.run(_sh(f"cat /in > /out/{name}.copy"),
                       mounts=[llb.Mount("/in", ctx, readonly=True, selector=f"{name}.txt"),
                               llb.Mount("/out", llb.scratch())],
                       constraints=llb.Constraints(custom_name=f"read {name}"))
        outs.append(run.get_mount("/out"))
    return llb.merge(outs).marshal().SerializeToString()


def test_changing_one_file_reruns_only_its_readers(pybuildctl, base_image, tmp_path) -> None:
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    (ctx / "a.txt").write_text("alpha\n")
    (ctx / "b.txt").write_text("bravo\n")
    definition = _selector_graph(base_image)
    args = ["--local", f"context={ctx}", "--output", f"type=local,dest={tmp_path / 'out1'}"]
    first = pybuildctl(args, stdin=definition)
    assert sorted(n for n in first.executed_names() if n.startswith("read")) == ["read a", "read b"]
    (ctx / "a.txt").write_text("alpha changed\n")
    second = pybuildctl(["--local", f"context={ctx}", "--output", f"type=local,dest={tmp_path / 'out2'}"],
                        stdin=definition)
    assert [n for n in second.executed_names() if n.startswith("read")] == ["read a"]
    assert (tmp_path / "out2" / "a.copy").read_text() == "alpha changed\n"
    assert (tmp_path / "out2" / "b.copy").read_text() == "bravo\n"


EPOCH = {"SOURCE_DATE_EPOCH": "1700000000"}


def _tree(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.mark.parametrize("point", [faults.BLOB_WRITTEN_NOT_RENAMED, faults.SNAPSHOT_COMMITTED_NO_RECORD,
                                   faults.MID_EXPORT])
@pytest.mark.daemonless  # a crash point kills the daemon itself
def test_sigkill_then_rebuild_is_consistent_and_identical(point, pybuildctl, base_image, tmp_path, builder_config) -> None:
    base = llb.image(base_image).add_env("PATH", llb.DEFAULT_PATH)
    state = base.run(_sh(f"echo crash-test {point} > /result.txt")).root()
    definition = state.marshal().SerializeToString()
    out_kind = "type=oci,dest={dest},rewrite-timestamp=true" if point == faults.MID_EXPORT else "type=local,dest={dest}"
    crashed_root = tmp_path / "crashed"
    crashed = pybuildctl([ "--output", out_kind.format(dest=tmp_path / "ignored")], stdin=definition,
                         root=crashed_root, check=False, env={"PYBUILDKIT_CRASHPOINT": point, **EPOCH})
    # --daemonless runs an ephemeral daemon: the crash point kills it, the client says so
    assert crashed.returncode == 1 and "died during the build (signal 9)" in crashed.stderr, \
        f"the crash point {point} was not reached: {crashed.stderr}"
    again = tmp_path / "again"
    clean = tmp_path / "clean"
    pybuildctl(["--output", out_kind.format(dest=again)], stdin=definition, root=crashed_root, env=EPOCH)
    pybuildctl(["--output", out_kind.format(dest=clean)], stdin=definition, root=tmp_path / "fresh", env=EPOCH)
    if point == faults.MID_EXPORT:
        assert again.read_bytes() == clean.read_bytes()
    else:
        assert _tree(again) == _tree(clean)
    from pybuildkit.appliance.build import make_builder
    from pybuildkit.appliance.config import load_config

    builder = make_builder(load_config(builder_config, root=crashed_root))
    try:
        assert builder.worker.check() == []
        for snap in builder.worker.snapshots.all():
            assert all(builder.worker.snapshots.layer_path(layer).is_dir() for layer in snap.layers)
        assert not list((crashed_root / "snapshots" / "layers").glob("*.tmp"))
    finally:
        builder.worker.close()
