"""Fetching the Dockerfile and its ignore file through the local-files provider, so the same
code serves daemonless builds and (later) builds whose files arrive over the client session."""
from __future__ import annotations

import os
import posixpath
import shutil
import tempfile
from collections.abc import Awaitable, Callable
from pathlib import Path

from pybuildkit.solver.errors import BuildError
from pybuildkit.solver.platforms import Platform, host_platform
from pybuildkit.solver.scheduler import Job
from pybuildkit.worker.providers import LocalSyncRequest


def _fetch(job: Job, name: str, wanted: list[str]) -> dict[str, bytes]:
    locals_ = job.providers.locals if job.providers else None
    if locals_ is None:
        raise BuildError("the dockerfile.v0 frontend needs local directories", hint="pass --local context=DIR --local dockerfile=DIR")
    tmp = Path(tempfile.mkdtemp(prefix="dockerfile-"))
    try:
        # followpaths, as BuildKit's dockerui asks: the client also sends what a symlink points at
        locals_.sync(LocalSyncRequest(name, follow_paths=tuple(wanted)), tmp)
        found: dict[str, bytes] = {}
        for item in wanted:
            path = tmp / item
            if path.is_symlink():
                path = tmp / posixpath.normpath(posixpath.join(posixpath.dirname(item), os.readlink(path))).lstrip("/")
            if path.is_file():
                found[item] = path.read_bytes()
        return found
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def load_frontend_inputs(request, job: Job, resolver: Callable[[str, Platform], Awaitable[tuple[str, dict]]]):
    from pybuildkit.frontend.dockerfile.builder import FrontendInputs

    attrs = dict(request.frontend_attrs)
    filename = attrs.get("filename", "Dockerfile")
    dockerfile_local = "dockerfile" if "dockerfile" in request.local_dirs or not request.local_dirs else "context"
    name = posixpath.normpath(filename).lstrip("/")
    fallback = "filename" not in attrs and name == "Dockerfile"  # a lowercase `dockerfile` will do, in one transfer
    files = _fetch(job, dockerfile_local, [name, name + ".dockerignore"] + (["dockerfile"] if fallback else []))
    if name not in files and fallback and "dockerfile" in files:
        name = "dockerfile"
    if name not in files:
        raise BuildError(f"failed to read dockerfile: open {filename}: no such file or directory",
                         hint="check --local dockerfile=DIR and --opt filename=NAME")
    dockerignore = files.get(name + ".dockerignore")
    if dockerignore is None:
        dockerignore = _fetch(job, "context", [".dockerignore"]).get(".dockerignore")
    named_locals = {v[len("local:"):] for k, v in attrs.items() if k.startswith("context:") and v.startswith("local:")}
    local_ignores = {}
    for local in sorted(named_locals):  # a named local context brings its own .dockerignore, as BuildKit's
        found = _fetch(job, local, [".dockerignore"]).get(".dockerignore")
        if found is not None:
            local_ignores[local] = found
    return FrontendInputs(
        dockerfile=files[name], dockerfile_name=posixpath.basename(name), dockerignore=dockerignore,
        local_dockerignores=local_ignores,
        attrs=attrs, session_id=job.session_id, build_platform=host_platform(),
        resolve_image_config=resolver,
    )
