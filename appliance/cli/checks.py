"""Flag checks buildctl makes before it dials the daemon, as functions of parsed values.

Each check fails with one `UsageError` naming the flag and the path, so a user mistake never
reaches the daemon (where it would surface late, as an RPC error, or not at all). The wording
follows buildctl's where buildctl has a message for the case.
"""
from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from pybuildkit.solver.errors import BuildError

#: entitlements buildctl's `--allow` accepts (BuildKit's entitlements.Parse)
ENTITLEMENTS = ("network.host", "security.insecure", "device")


class UsageError(BuildError):
    """A flag's value cannot work; raised before anything is sent to the daemon."""


@dataclass(frozen=True)
class OutputPlace:
    """Where one output lands on the client: `dir`, `file` (dest is a path or `-`), or nothing
    (`none`, for outputs that stay in the daemon or go to a registry)."""

    kind: str
    dest: str = ""


def output_place(kind: str, values: Mapping[str, str]) -> OutputPlace:
    """`oci`/`docker` write a tarball unless `tar=false`, which makes them an OCI layout directory."""
    dest = values.get("dest", "")
    if kind == "local":
        return OutputPlace("dir", dest)
    if kind == "tar":
        return OutputPlace("file", dest or "-")
    if kind in ("oci", "docker"):
        if values.get("tar", "true").strip().lower() in ("false", "0"):
            return OutputPlace("dir", dest)
        return OutputPlace("file", dest or ("-" if kind == "oci" else ""))
    return OutputPlace("none")


def check_opts(values: Sequence[str]) -> None:
    """`--opt` is a KEY=VALUE frontend attribute; a bare word is a mistake, not an empty value."""
    for value in values:
        key, sep, _ = value.partition("=")
        if not sep or not key:
            raise UsageError(f"--opt: invalid value {value!r}: expected KEY=VALUE",
                             hint="for example --opt target=release or --opt build-arg:VERSION=1.2")


def check_entitlements(values: Sequence[str]) -> None:
    for value in values:
        if value not in ENTITLEMENTS:
            raise UsageError(f"--allow: unknown entitlement {value}",
                             hint="valid entitlements: " + ", ".join(ENTITLEMENTS))


def check_outputs(outputs: Sequence, *, stdout_is_tty: bool) -> None:
    """Every output's options, and where it lands: a directory that is not a file, a file that
    is not a directory in a directory that exists, at most one output on stdout, and never a
    tarball onto a terminal."""
    from pybuildkit.appliance.outputs import validate_output

    on_stdout = False
    for output in outputs:
        validate_output(output, require_dest=False)
        place = output_place(output.type, output.attrs)
        flag = f"--output type={output.type}"
        if place.kind == "dir":
            _check_dir_dest(flag, output.type, place.dest)
        elif place.kind == "file":
            if place.dest == "-":
                if on_stdout:
                    raise UsageError(f"{flag}: multiple outputs configured to write to stdout",
                                     hint="give all but one of them dest=FILE")
                if stdout_is_tty:
                    raise UsageError(f"{flag}: dest file is required for {output.type} exporter. "
                                     "refusing to write to console",
                                     hint="pass dest=FILE, or redirect stdout (> image.tar)")
                on_stdout = True
            elif place.dest:
                _check_file_dest(flag, place.dest)


def _check_dir_dest(flag: str, kind: str, dest: str) -> None:
    if not dest:
        raise UsageError(f"{flag}: dest is required for {kind} exporter", hint="pass dest=DIR")
    if dest == "-":
        raise UsageError(f"{flag}: dest cannot be stdout for {kind} exporter", hint="pass dest=DIR")
    path = Path(dest)
    if path.exists() and not path.is_dir():
        raise UsageError(f"{flag}: destination directory {dest} is a file",
                         hint="choose a directory, or remove the file")
    _check_parent(flag, path)


def _check_file_dest(flag: str, dest: str) -> None:
    path = Path(dest)
    if path.is_dir():
        raise UsageError(f"{flag}: destination file {dest} is a directory",
                         hint=f"name a file inside it, e.g. dest={path / 'image.tar'}")
    _check_parent(flag, path)


def _check_parent(flag: str, path: Path) -> None:
    parent = path.absolute().parent
    if not parent.exists():
        raise UsageError(f"{flag}: cannot write {path}: directory {parent} does not exist",
                         hint=f"create it first (mkdir -p {parent})")
    if not parent.is_dir():
        raise UsageError(f"{flag}: cannot write {path}: {parent} is not a directory")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise UsageError(f"{flag}: cannot write {path}: directory {parent} is not writable")


def check_metadata_file(path: Path | None) -> None:
    """The metadata file is written after the build: a bad path must fail before it runs."""
    if path is None:
        return
    if path.is_dir():
        raise UsageError(f"--metadata-file {path}: is a directory", hint="name a file, e.g. metadata.json")
    parent = path.absolute().parent
    if not parent.is_dir():
        raise UsageError(f"--metadata-file {path}: directory {parent} does not exist",
                         hint=f"create it first (mkdir -p {parent})")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise UsageError(f"--metadata-file {path}: directory {parent} is not writable")


def check_root(path: Path | None) -> None:
    """`--root` (the --daemonless daemon's state directory) must be, or become, a writable directory."""
    if path is None:
        return
    if path.exists():
        if not path.is_dir():
            raise UsageError(f"--root {path}: not a directory", hint="pass a directory for the builder's state")
        if not os.access(path, os.W_OK | os.X_OK):
            raise UsageError(f"--root {path}: directory is not writable",
                             hint="pass a directory you own, or run as its owner")
        return
    ancestor = path.absolute().parent
    while not ancestor.exists():
        ancestor = ancestor.parent
    if not ancestor.is_dir():
        raise UsageError(f"--root {path}: cannot be created: {ancestor} is not a directory")
    if not os.access(ancestor, os.W_OK | os.X_OK):
        raise UsageError(f"--root {path}: cannot be created: {ancestor} is not writable",
                         hint="pass a directory you own")


def check_build_flags(args, outputs: Sequence, *, stdout_is_tty: bool) -> None:
    """All of the above for one `build` command line (argparse namespace + parsed outputs)."""
    check_opts(getattr(args, "opt", ()) or ())
    check_entitlements(getattr(args, "allow", ()) or ())
    check_outputs(outputs, stdout_is_tty=stdout_is_tty)
    check_metadata_file(getattr(args, "metadata_file", None))
    if getattr(args, "daemonless", False):
        check_root(getattr(args, "root", None))
