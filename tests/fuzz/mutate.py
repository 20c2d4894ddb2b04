"""Hostile inputs: grammar-shaped Dockerfiles, mutated conformance Dockerfiles and mutated LLB.

Everything takes a `random.Random`, so the hypothesis suite (which hands one in and shrinks it)
and the long campaign in bench/fuzz.py (which seeds one per input) draw from the same shapes.
"""
from __future__ import annotations

import random

from pybuildkit.solver.llb.marshal import digest_of
from pybuildkit.solver.pb import ops_pb2 as pb

INSTRUCTIONS = ["FROM", "RUN", "COPY", "ADD", "ENV", "ARG", "LABEL", "EXPOSE", "WORKDIR", "USER", "CMD",
                "ENTRYPOINT", "SHELL", "VOLUME", "STOPSIGNAL", "HEALTHCHECK", "ONBUILD", "MAINTAINER"]
FLAGS = ["--chmod=", "--chown=", "--from=", "--link", "--link=", "--mount=", "--network=", "--security=",
         "--platform=", "--retries=", "--interval=", "--timeout=", "--start-period=", "--exclude=",
         "--checksum=", "--parents", "--keep-git-dir=", "--unpack="]
VALUES = ["12x", "abc", "2:3", "0755", "u+x", "-1", "99999999999999999999", "1e999", "nan", "²", "", "=",
          "${A}", "$A", "${A:-x}", "${A//a/bb}", "${A#*}", "${", "}", "\"", "'", "\\", "`", "<<EOF", "[\"a\"]",
          "[", "]", "type=cache,target=/x,mode=12x", "type=secret,id=a,uid=abc", "type=tmpfs,size=1e999",
          "type=bind,from=0,source=/", "linux/amd64", "linux/", "1-65536", "80/tcp", "\t", "\x00", "\u2028",
          "scratch", "busybox", "a b", "0", "1", "true", "false", "#", "ONBUILD", "AS", "\ufeff"]
TOKENS = [t.encode("utf-8") for t in VALUES + INSTRUCTIONS + FLAGS] + [
    b"\xff", b"\xfe\xff", b"\xed\xa0\x80", b"\xc3", b"\n", b"\\\n", b"\r\n", b" ", b"${A:-" * 50, b"}" * 50,
    b"[" * 200, b"# escape=`\n", b"# syntax=docker/dockerfile:1\n", b"\n\n\n", b"\\"]


def _value(rnd: random.Random) -> str:
    parts = [rnd.choice(VALUES) for _ in range(rnd.randint(1, 3))]
    return "".join(parts)


def generate_dockerfile(rnd: random.Random) -> bytes:
    """A Dockerfile shaped like a real one (stages, flags, variables) with hostile values."""
    lines = []
    if rnd.random() < 0.3:
        lines.append(f"ARG A={_value(rnd)}")
    for stage in range(rnd.randint(1, 3)):
        base = rnd.choice(["scratch", "scratch", "busybox", f"{stage - 1}", _value(rnd)])
        lines.append(f"FROM {base}" + (f" AS s{stage}" if rnd.random() < 0.5 else ""))
        for _ in range(rnd.randint(0, 6)):
            name = rnd.choice(INSTRUCTIONS[1:])
            flags = " ".join(rnd.choice(FLAGS) + (_value(rnd) if rnd.random() < 0.8 else "")
                             for _ in range(rnd.randint(0, 2)))
            args = " ".join(_value(rnd) for _ in range(rnd.randint(0, 3)))
            if name in ("ENV", "LABEL", "ARG"):
                args = f"A={_value(rnd)} B={_value(rnd)}"
            lines.append(f"{name} {flags} {args}".rstrip())
    return ("\n".join(lines) + "\n").encode("utf-8", "surrogatepass")


def mutate_bytes(data: bytes, rnd: random.Random, others: list[bytes] | None = None) -> bytes:
    """A few byte-level edits: flip, insert a hostile token, delete, duplicate, splice."""
    buf = bytearray(data)
    for _ in range(rnd.randint(1, 6)):
        pos = rnd.randint(0, len(buf)) if buf else 0
        choice = rnd.random()
        if choice < 0.15 and buf:
            buf[min(pos, len(buf) - 1)] = rnd.randrange(256)
        elif choice < 0.55:
            buf[pos:pos] = rnd.choice(TOKENS)
        elif choice < 0.7 and buf:
            del buf[pos:pos + rnd.randint(1, 16)]
        elif choice < 0.85 and buf:
            chunk = bytes(buf[pos:pos + rnd.randint(1, 64)])
            buf[pos:pos] = chunk * rnd.randint(1, 8)
        elif others:
            other = rnd.choice(others)
            start = rnd.randint(0, len(other))
            buf[pos:pos] = other[start:start + rnd.randint(1, 200)]
    return bytes(buf)


def generate_definition(rnd: random.Random) -> bytes:
    """A small LLB definition, valid or not: ops wired to earlier ops, sometimes to nowhere."""
    raw: list[bytes] = []
    for _ in range(rnd.randint(0, 6)):
        kind = rnd.choice(["source", "exec", "file", "merge", "diff", "empty"])
        op = pb.Op()
        if kind == "source":
            op.source.identifier = rnd.choice(["docker-image://busybox", "local://context", "bogus://x", ""])
        elif kind == "exec":
            op.exec.meta.args.extend(["/bin/sh", "-c", "true"])
            op.exec.mounts.add(input=rnd.randint(-1, 3), dest="/", output=rnd.randint(-1, 1))
        elif kind == "file":
            op.file.actions.add(input=rnd.randint(-2, 3), secondaryInput=rnd.randint(-2, 3), output=0,
                                mkdir=pb.FileActionMkDir(path="/x", mode=0o755))
        elif kind == "merge":
            op.merge.inputs.add(input=rnd.randint(-1, 3))
        elif kind == "diff":
            op.diff.lower.input = rnd.randint(-1, 3)
            op.diff.upper.input = rnd.randint(-1, 3)
        for _ in range(rnd.randint(0, 2)):
            target = rnd.choice(raw) if raw and rnd.random() < 0.8 else bytes(rnd.randrange(256) for _ in range(8))
            op.inputs.add(digest=digest_of(target), index=rnd.randint(0, 2))
        raw.append(op.SerializeToString())
    if raw and rnd.random() < 0.9:
        terminal = pb.Op()
        terminal.inputs.add(digest=digest_of(raw[-1]), index=0)
        raw.append(terminal.SerializeToString())
    definition = pb.Definition()
    getattr(definition, "def").extend(raw)
    data = definition.SerializeToString()
    return mutate_bytes(data, rnd) if rnd.random() < 0.3 else data
