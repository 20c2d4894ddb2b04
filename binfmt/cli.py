"""`pybuildkit-binfmt`: install, uninstall and prove QEMU binfmt_misc handlers.

Only entries named `pybuildkit-<arch>` are ever written or removed; Debian's `qemu-*` entries
and any other installer's stay as they are, are reported by `status` and used when they work.
"""
from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path

from pybuildkit.binfmt.emulator import ARCHES, BINFMT_MISC, native_arch, runs_natively
from pybuildkit.binfmt.register import BinfmtError, Registration, interpreter_for, register, unregister

PROG = "pybuildkit-binfmt"
PERSIST_DIR = Path("/etc/binfmt.d")


def _archs(text: str, *, default_all: bool) -> list[str]:
    if not text or text == "all":
        return [a for a in ARCHES if not runs_natively(a, native_arch())] if default_all or text == "all" else []
    out = []
    for name in text.split(","):
        name = {"aarch64": "arm64", "x86_64": "amd64", "i386": "386", "armhf": "arm", "ppc64el": "ppc64le"}.get(
            name.strip(), name.strip())
        if name.startswith("linux/"):
            name = name.split("/")[1]
        if name not in ARCHES:
            raise SystemExit(f"{PROG}: unknown architecture {name!r} (known: {', '.join(ARCHES)})")
        out.append(name)
    return out


def _install(args: argparse.Namespace) -> int:
    failures = 0
    for arch in _archs(args.archs, default_all=True):
        found = interpreter_for(arch)
        if found is None:
            qemu = ARCHES[arch][0]
            print(f"{arch}: no emulator installed (apt install qemu-user-static provides qemu-{qemu}-static)",
                  file=sys.stderr)
            failures += 1
            continue
        reg = Registration(arch, *found)
        try:
            register(reg)
        except BinfmtError as exc:
            print(f"{arch}: {exc}", file=sys.stderr)
            failures += 1
            continue
        print(f"installed {reg.name} ({reg.interpreter}, flags {reg.flags})")
        if args.persist:
            PERSIST_DIR.mkdir(parents=True, exist_ok=True)
            (PERSIST_DIR / f"{reg.name}.conf").write_text(reg.line() + "\n")
    return 1 if failures else 0


def _uninstall(args: argparse.Namespace) -> int:
    for arch in _archs(args.archs or "all", default_all=True):
        if unregister(arch):
            print(f"uninstalled pybuildkit-{arch}")
        (PERSIST_DIR / f"pybuildkit-{arch}.conf").unlink(missing_ok=True)
    return 0


def _status(args: argparse.Namespace) -> int:
    from pybuildkit.binfmt.probe import status

    rows = status()
    if args.json:
        print(json.dumps({"binfmt_misc": str(BINFMT_MISC), "native": native_arch(),
                          "platforms": [r.to_json() for r in rows]}, indent=2))
        return 0
    for row in rows:
        extra = f" {row.handler} ({row.interpreter}, flags {row.flags})" if row.how == "binfmt" else ""
        why = f" - {row.detail}" if row.detail and row.how != "native" else ""
        print(f"{row.platform:<16}{row.how}{extra}{why}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog=PROG, description="QEMU binfmt_misc handlers for multi-platform builds")
    sub = parser.add_subparsers(dest="command", required=True)
    install = sub.add_parser("install", help="register handlers (default: every foreign architecture)")
    install.add_argument("archs", nargs="?", default="all", help="all, or a comma-separated list (arm64,s390x)")
    install.add_argument("--persist", action="store_true", help=f"also write {PERSIST_DIR}/pybuildkit-ARCH.conf")
    uninstall = sub.add_parser("uninstall", help="remove pybuildkit's handlers (others are never touched)")
    uninstall.add_argument("archs", nargs="?", default="all")
    status = sub.add_parser("status", help="prove each platform by running a tiny program for it")
    status.add_argument("--json", action="store_true", help="machine-readable output")
    args = parser.parse_args(argv)
    try:
        return {"install": _install, "uninstall": _uninstall, "status": _status}[args.command](args)
    except PermissionError as exc:
        print(f"{PROG}: {exc.filename or BINFMT_MISC}: permission denied (run as root, or inside a user "
              "namespace with its own binfmt_misc)", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
