"""Flag checks pybuildctl makes before it dials the daemon (buildctl's build/output parsing)."""
from __future__ import annotations

from pathlib import Path

import pytest

from pybuildkit.appliance.outputs import Output
from pybuildkit.appliance.cli.checks import (UsageError, check_entitlements, check_metadata_file, check_opts,
                                              check_outputs, check_root, output_place)


def _check(*outputs: Output, tty: bool = False) -> None:
    check_outputs(outputs, stdout_is_tty=tty)


def test_tar_output_without_dest_refuses_a_terminal() -> None:
    """buildctl: "dest file is required for tar exporter. refusing to write to console"."""
    with pytest.raises(UsageError, match="refusing to write to console"):
        _check(Output("tar", {}), tty=True)
    _check(Output("tar", {}), tty=False)  # a pipe is fine


@pytest.mark.parametrize("kind", ["oci", "tar"])
def test_dest_dash_is_stdout_and_refuses_a_terminal(kind: str) -> None:
    with pytest.raises(UsageError, match=f"required for {kind} exporter. refusing to write to console"):
        _check(Output(kind, {"dest": "-"}), tty=True)


def test_two_outputs_to_stdout_are_refused() -> None:
    """buildctl: "multiple outputs configured to write to stdout"."""
    with pytest.raises(UsageError, match="multiple outputs configured to write to stdout"):
        _check(Output("tar", {}), Output("oci", {"dest": "-"}))


def test_opt_without_equals_is_refused() -> None:
    """`--opt` takes key=value frontend attributes (buildctl reference)."""
    with pytest.raises(UsageError, match="--opt: invalid value 'target'"):
        check_opts(["build-arg:A=1", "target"])
    check_opts(["build-arg:A=", "no-cache="])


def test_unknown_entitlement_is_refused_with_the_valid_ones() -> None:
    """`--allow`: "Allow extra privileged entitlement, e.g. network.host, security.insecure"."""
    with pytest.raises(UsageError, match="unknown entitlement network.hots") as info:
        check_entitlements(["network.host", "network.hots"])
    assert "network.host, security.insecure" in (info.value.hint or "")


@pytest.mark.parametrize("kind,key", [("image", "dest"), ("image", "tar"), ("oci", "pushh"), ("docker", "bogus"),
                                      ("local", "compression"), ("tar", "mode")])
def test_unknown_exporter_options_are_refused_per_exporter(kind: str, key: str, tmp_path: Path) -> None:
    attrs = {key: "1"}
    if kind in ("local", "oci", "docker", "tar") and key != "dest":
        attrs["dest"] = str(tmp_path / "out")
    with pytest.raises(Exception, match=f"unknown option '{key}'"):
        _check(Output(kind, attrs))


def test_file_dest_that_is_a_directory_is_refused(tmp_path: Path) -> None:
    """buildctl: "destination file %s is a directory"."""
    with pytest.raises(UsageError, match=f"destination file {tmp_path} is a directory"):
        _check(Output("oci", {"dest": str(tmp_path)}))


def test_dest_in_a_missing_directory_is_refused(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match=f"directory {tmp_path / 'missing'} does not exist"):
        _check(Output("docker", {"dest": str(tmp_path / "missing" / "image.tar")}))


def test_local_dest_that_is_a_file_is_refused(tmp_path: Path) -> None:
    """buildctl: "destination directory %s is a file"."""
    (tmp_path / "file").write_text("x")
    with pytest.raises(UsageError, match="destination directory .*/file is a file"):
        _check(Output("local", {"dest": str(tmp_path / "file")}))


def test_local_needs_a_dest_and_not_stdout() -> None:
    with pytest.raises(UsageError, match="dest is required for local exporter"):
        _check(Output("local", {}))
    with pytest.raises(UsageError, match="dest cannot be stdout for local exporter"):
        _check(Output("local", {"dest": "-"}))


def test_oci_tar_false_is_a_directory_output(tmp_path: Path) -> None:
    """oci exporter `tar=false`: "Export as a directory instead of a tarball"."""
    assert output_place("oci", {"tar": "false", "dest": "d"}).kind == "dir"
    assert output_place("oci", {"dest": "f.tar"}).kind == "file"
    (tmp_path / "f").write_text("x")
    with pytest.raises(UsageError, match="is a file"):
        _check(Output("oci", {"tar": "false", "dest": str(tmp_path / "f")}))


def test_metadata_file_in_a_missing_directory_is_refused(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="--metadata-file .* directory .*nodir does not exist"):
        check_metadata_file(tmp_path / "nodir" / "md.json")
    check_metadata_file(tmp_path / "md.json")


def test_unusable_root_is_refused(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("x")
    with pytest.raises(UsageError, match="--root .*file: not a directory"):
        check_root(tmp_path / "file")
    with pytest.raises(UsageError, match="cannot be created: .*file is not a directory"):
        check_root(tmp_path / "file" / "state")
    check_root(tmp_path / "new" / "state")
