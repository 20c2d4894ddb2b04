"""Runs one upstream Dockerfile integration case (../shared/conformance/dockerfile2llb) for real:
context from the manifest, `pybuildctl --daemonless build --frontend dockerfile.v0`, then the
case's assertions on files, errors and image configs."""
from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


@dataclass
class RunOutcome:
    ok: bool
    problems: list[str] = field(default_factory=list)


def prepare_context(case_dir: Path, case: dict, run: dict, work: Path) -> Path:
    opts = run.get("opts", {})
    source = case_dir / (opts.get("context_dir") or case.get("context_dir") or "context")
    ctx = work / "context"
    if ctx.exists():
        shutil.rmtree(ctx)
    if source.is_dir():
        shutil.copytree(source, ctx, symlinks=True)
    else:
        ctx.mkdir(parents=True)
    for entry in case.get("context_manifest", []):
        path = ctx / entry["path"]
        if entry.get("type") == "symlink" and not path.is_symlink():
            if os.path.lexists(path):
                path.unlink()  # git kept the link as a file holding its target
            path.parent.mkdir(parents=True, exist_ok=True)
            os.symlink(entry["target"], path)
        elif entry.get("type") == "dir":
            path.mkdir(parents=True, exist_ok=True)
        elif entry.get("type") == "file" and not path.exists() and "content" in entry:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(entry["content"])
        if entry.get("mode") and os.path.lexists(path) and not path.is_symlink():
            os.chmod(path, int(entry["mode"], 8))
    dockerfile = ctx / "Dockerfile"
    if dockerfile.is_file() and not dockerfile.is_symlink():
        target = dockerfile.read_text(errors="replace").strip()
        if target and "\n" not in target and (ctx / target).is_file():
            dockerfile.unlink()  # git cannot keep the case's symlinked Dockerfile; recreate it
            os.symlink(target, dockerfile)
    if opts.get("dockerfile_file"):
        shutil.copy(case_dir / opts["dockerfile_file"], ctx / (opts.get("filename") or "Dockerfile"))
    return ctx


def substitute_registry(ctx: Path, registry_host: str) -> None:
    for candidate in ctx.iterdir():
        if candidate.is_file() and "ockerfile" in candidate.name:
            text = candidate.read_text(errors="surrogateescape")
            if "<registry>" in text:
                candidate.write_text(text.replace("<registry>", registry_host), errors="surrogateescape")


def _attrs(opts: dict) -> dict[str, str]:
    attrs: dict[str, str] = {}
    if opts.get("target"):
        attrs["target"] = opts["target"]
    if opts.get("platform"):
        attrs["platform"] = opts["platform"]
    if opts.get("filename"):
        attrs["filename"] = opts["filename"]
    for key, value in (opts.get("build_args") or {}).items():
        attrs[f"build-arg:{key}"] = value
    attrs.update(opts.get("frontend_attrs") or {})
    return attrs


def convert_only(ctx: Path, opts: dict) -> tuple[bool, str, dict | None]:
    from pybuildkit.frontend.dockerfile.builder import FrontendInputs, build
    from pybuildkit.solver.errors import BuildError

    name = opts.get("filename") or "Dockerfile"
    try:
        result = asyncio.run(build(FrontendInputs((ctx / name).read_bytes(), name, None, _attrs(opts))))
    except BuildError as exc:
        return False, exc.message, None
    return True, "", result.image_configs[-1]


def run_build(ctx: Path, opts: dict, *, root: Path, config: Path, out: Path, registry_host: str,
              work: Path, address: str | None = None) -> tuple[bool, str, dict | None]:
    """One build of a case: through the daemon at `address`, or --daemonless on `root`."""
    where = ["--addr", address] if address else ["--daemonless", "--root", str(root), "--config", str(config)]
    cmd = [sys.executable, "-m", "pybuildkit.appliance.cli.main", *where,
           "build", "--progress", "plain", "--frontend", "dockerfile.v0",
           "--local", f"context={ctx}", "--local", f"dockerfile={ctx}", "--metadata-file", str(work / "md.json")]
    for key, value in _attrs(opts).items():
        cmd += ["--opt", f"{key}={value}"]
    for secret_id, value in (opts.get("secrets") or {}).items():
        path = work / f"secret-{secret_id}"
        path.write_text(value)
        cmd += ["--secret", f"id={secret_id},src={path}"]
    agent = None
    if opts.get("ssh"):
        sock = work / "agent.sock"
        agent = subprocess.Popen(["ssh-agent", "-D", "-a", str(sock)], stdout=subprocess.DEVNULL)
        key = work / "id_rsa"
        subprocess.run(["ssh-keygen", "-q", "-t", "rsa", "-m", "PEM", "-N", "", "-f", str(key)], check=True)
        for _ in range(100):
            if sock.exists():
                break
            subprocess.run(["sleep", "0.02"])
        subprocess.run(["ssh-add", str(key)], env={**os.environ, "SSH_AUTH_SOCK": str(sock)}, capture_output=True)
        for ssh_id in opts["ssh"]:
            cmd += ["--ssh", f"{ssh_id}={sock}"]
    exporter = opts.get("exporter")
    if exporter is None:
        cmd += ["--output", f"type=local,dest={out}"]
    elif exporter["type"] == "oci":
        cmd += ["--output", f"type=oci,dest={out / exporter.get('output', 'out.tar')}"]
        out.mkdir(parents=True, exist_ok=True)
    else:
        attrs = dict(exporter.get("attrs") or {})
        if "name" in attrs:
            attrs["name"] = attrs["name"].replace("<registry>", registry_host)
        text = ",".join(f"{k}={v}" for k, v in attrs.items())
        cmd += ["--output", f"type={exporter['type']}" + (f",{text}" if text else "")]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    finally:
        if agent is not None:
            agent.terminate()
            agent.wait()
    config_doc = None
    md = work / "md.json"
    if proc.returncode == 0 and md.exists():
        digest = json.loads(md.read_text()).get("containerimage.config.digest")
        if digest:
            blob = root / "content" / "blobs" / "sha256" / digest.split(":")[1]
            if blob.exists():
                config_doc = json.loads(blob.read_text())
        md.unlink()
    return proc.returncode == 0, proc.stderr, config_doc


def _get(doc: dict, path: str):
    current = doc
    for part in re.findall(r"[^.\[\]]+|\[-?\d+\]", path):
        if part.startswith("["):
            current = current[int(part[1:-1])]
        else:
            current = current.get(part) if isinstance(current, dict) else None
        if current is None:
            return None
    return current


def check_image_config(doc: dict | None, expected: dict, problems: list[str]) -> None:
    if doc is None:
        problems.append("no image config to check")
        return
    for key, want in expected.items():
        if key.endswith(".keys_sorted"):
            got = sorted((_get(doc, key[: -len(".keys_sorted")]) or {}).keys())
        elif key.endswith("_contains"):
            base = key[: -len("_contains")]
            got_value = _get(doc, base) or []
            wanted = want if isinstance(want, list) else [want]
            for item in wanted:
                if item.endswith("..."):
                    ok = any(str(v).startswith(item[:-3]) for v in got_value)
                else:
                    ok = any(item in str(v) for v in got_value) if isinstance(got_value, list) else item in str(got_value)
                if not ok:
                    problems.append(f"{base} lacks {item!r}: {got_value!r}")
            continue
        elif key.endswith(".length"):
            got = len(_get(doc, key[: -len(".length")]) or [])
        else:
            got = _get(doc, key)
        if isinstance(want, str) and want.startswith("non-empty"):
            if not got:
                problems.append(f"{key} is empty")
            continue
        if isinstance(want, dict) and isinstance(got, dict) and any(k.endswith("_ns") for k in want):
            want = {k[:-3] if k.endswith("_ns") else k: v for k, v in want.items()}
        if got != want:
            problems.append(f"{key}: got {got!r}, want {want!r}")


def check_files(out: Path, ctx: Path, files: dict, saved: dict, problems: list[str]) -> None:
    for rel, check in files.items():
        path = out / rel
        if "exists" in check:
            if path.exists() != check["exists"]:
                problems.append(f"{rel}: exists={path.exists()}, want {check['exists']}")
            continue
        if check.get("is_dir"):
            if not path.is_dir():
                problems.append(f"{rel}: not a directory")
            continue
        if not path.exists():
            problems.append(f"{rel}: missing from the output")
            continue
        data = path.read_bytes()
        text = data.decode(errors="replace")
        if "equals" in check and text != check["equals"]:
            problems.append(f"{rel}: got {text!r}, want {check['equals']!r}")
        for piece in check.get("contains", []):
            if piece not in text:
                problems.append(f"{rel}: lacks {piece!r}")
        for piece in check.get("not_contains", []):
            if piece in text:
                problems.append(f"{rel}: contains {piece!r}")
        if "equals_context_file" in check and data != (ctx / check["equals_context_file"]).read_bytes():
            problems.append(f"{rel}: differs from context file {check['equals_context_file']}")
        if "save_as" in check:
            saved[check["save_as"]] = data
        if "equals_saved" in check and saved.get(check["equals_saved"]) != data:
            problems.append(f"{rel}: differs from the saved {check['equals_saved']}")


def check_errors(ok: bool, stderr: str, expect: dict, problems: list[str]) -> None:
    if expect.get("success", True):
        if not ok:
            problems.append("build failed: " + stderr.strip().splitlines()[-1] if stderr.strip() else "build failed")
        return
    if ok:
        problems.append("build succeeded but should have failed")
        return
    for piece in expect.get("error_contains", []):
        if piece not in stderr:
            problems.append(f"error lacks {piece!r}: {stderr.strip().splitlines()[-1:]}")
    if "error_equals" in expect and expect["error_equals"] not in stderr:
        problems.append(f"error is not {expect['error_equals']!r}")
    if "error_regex" in expect and not re.search(expect["error_regex"], stderr):
        problems.append(f"error does not match {expect['error_regex']!r}")
