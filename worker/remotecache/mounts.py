"""Cache mounts (`RUN --mount=type=cache`) in an exported cache, beyond BuildKit (its issue 1474).

With `cache-mounts=true`, each cache mount a build used travels as one more gzip layer blob in
the cache manifest, annotated with the mount's id. BuildKit's importers only read the blobs
the cache config names, so they ignore these. Import restores a mount before the build, and
only into a mount this builder does not have yet (a warm local cache wins).
"""
from __future__ import annotations

import os
import tempfile
from collections.abc import Sequence
from pathlib import Path

from pybuildkit.solver.definition import Graph
from pybuildkit.solver.pb import ops_pb2 as pb
from pybuildkit.worker.content.store import Descriptor
from pybuildkit.worker.remotecache.format import CACHE_MOUNT_ANNOTATION

MEDIA = "application/vnd.oci.image.layer.v1.tar+gzip"


def mount_ids(graphs: Sequence[Graph]) -> list[str]:
    ids: set[str] = set()
    for graph in graphs:
        for vertex in graph.vertices.values():
            if vertex.kind != "exec":
                continue
            for mount in vertex.op.exec.mounts:
                if mount.mountType == pb.CACHE:
                    ids.add(mount.cacheOpt.ID or mount.dest)
    return sorted(ids)


def pack(worker, cache_id: str) -> Descriptor | None:
    """One cache mount as a gzip tar blob in the content store; None if it holds nothing."""
    from pybuildkit.worker.compression import Compression, compress_tar
    from pybuildkit.worker.layer.diff import changes_between, write_layer_tar

    directory = worker.cache_mounts.directory(cache_id)
    if not directory.is_dir():
        return None
    changes = changes_between(None, directory)
    if not changes:
        return None
    fd, tar_name = tempfile.mkstemp(prefix="cachemount-", suffix=".tar", dir=worker.run_dir)
    try:
        with os.fdopen(fd, "wb") as out:
            write_layer_tar(changes, directory, out)
        with worker.content.writer() as writer:
            info = compress_tar(Path(tar_name), writer, Compression.GZIP, None)
            digest = writer.commit()
    finally:
        os.unlink(tar_name)
    return Descriptor(MEDIA, digest, info.size, {CACHE_MOUNT_ANNOTATION: cache_id,
                                                 "containerd.io/uncompressed": info.diff_id})


def unpack(worker, desc: Descriptor) -> bool:
    """Restore one exported cache mount unless this builder already has it; True if restored."""
    from pybuildkit.worker.compression import decompress_reader
    from pybuildkit.worker.layer.unpack import apply_layer

    directory = worker.cache_mounts.directory(desc.annotations[CACHE_MOUNT_ANNOTATION])
    if directory.exists() and any(directory.iterdir()):
        return False
    staging = directory.with_name(directory.name + ".import")
    staging.mkdir(parents=True, exist_ok=True)
    with worker.content.open(desc.digest) as blob:
        apply_layer(decompress_reader(blob, desc.media_type), staging, whiteout_mode="delete")
    if directory.exists():
        directory.rmdir()
    os.rename(staging, directory)
    return True
