"""`type=image`, `type=oci` and `type=docker`: build the image documents and deliver them."""
from __future__ import annotations

import asyncio
import base64
import json
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

from pybuildkit.solver.errors import BuildError
from pybuildkit.solver.faults import MID_EXPORT, crashpoint
from pybuildkit.solver.platforms import Platform
from pybuildkit.solver.progress import StatusEvent, now_ns
from pybuildkit.worker.content.store import Descriptor
from pybuildkit.worker.exporters import manifest as docs
from pybuildkit.worker.exporters.layers import LayerExporter
from pybuildkit.worker.exporters.options import ImageOptions, parse_image_options
from pybuildkit.worker.snapshot.store import Snapshot


async def export_image(worker, kind: str, attrs: Mapping[str, str],
                       results: Sequence[tuple[Platform, Snapshot | None]],
                       image_configs: Sequence[dict | None], job, *, vertex: str = "", sink=None,
                       build_args_epoch: str | None = None, layout_dir: Path | None = None,
                       inline_cache=None) -> dict[str, str]:
    """`sink`: a file object that receives the oci/docker tarball instead of `dest`, or a
    function of the response so far that returns one (the daemon's writer into the client's
    session, whose call metadata carries the digests); `layout_dir`: where a `tar=false` layout goes
    instead of `dest` (a directory the daemon then sends to the client). `build_args_epoch`: the
    build's `build-arg:SOURCE_DATE_EPOCH`, used unless the output sets `source-date-epoch`.
    `inline_cache(result_index, layer_blobs, options)` gives the value of the config's inline
    cache key."""
    options = parse_image_options(kind, attrs, build_args_epoch=build_args_epoch)
    if kind == "docker" and len(results) > 1:
        raise BuildError("docker exporter does not currently support exporting manifest lists",
                         hint="use --output type=oci for a multi-platform tarball")
    root, config_digest = await asyncio.to_thread(build_image, worker, options, results, image_configs, job, vertex,
                                                  inline_cache)
    response = {"containerimage.digest": root.digest, "containerimage.config.digest": config_digest,
                "containerimage.descriptor": base64.b64encode(json.dumps(root.to_json()).encode()).decode()}
    names = list(options.names)
    if options.name_canonical:
        names += [n.rsplit(":", 1)[0] + "@" + root.digest if ":" in n.rsplit("/", 1)[-1] else n + "@" + root.digest
                  for n in options.names]
    if names:  # normalized, as BuildKit reports them (docker.io/library/app:latest)
        from pybuildkit.worker.registry.reference import parse_reference

        response["image.name"] = ",".join(str(parse_reference(n)) for n in names)
    elif options.dangling_name_prefix:
        response["image.name"] = f"{options.dangling_name_prefix}@{root.digest}"
    if kind in ("oci", "docker") and not options.tar:
        from pybuildkit.worker.exporters.ocitar import write_oci_layout

        target = layout_dir or (Path(options.dest) if options.dest else None)
        if target is None:
            raise BuildError(f"--output type={kind},tar=false requires dest=<dir>")
        await asyncio.to_thread(write_oci_layout, target, worker.content, root, options.names)
    elif kind in ("oci", "docker"):
        if callable(sink):  # a factory that needs the response first (the client's FileSend)
            sink = sink(response)
        await asyncio.to_thread(_write_tarball, worker, options, root, sink)
    if options.push:
        await _push(worker, options, root, job, vertex)
    if kind == "image" and attrs.get("store", "true") != "false":
        for name in options.names:
            worker.store_image(name, root)
    return response


def build_image(worker, options: ImageOptions, results, image_configs, job, vertex: str = "",
                inline_cache=None) -> tuple[Descriptor, str]:
    layers = LayerExporter(worker)
    store = worker.content
    oci = options.oci_mediatypes
    epoch = options.source_date_epoch
    manifests: list[Descriptor] = []
    config_digest = ""
    for position, ((platform, snapshot), base_config) in enumerate(zip(results, image_configs)):
        started = now_ns()
        status = StatusEvent(id=f"exporting layers {platform}", vertex=vertex,
                             name=f"exporting layers {platform}" if len(results) > 1 else "exporting layers",
                             started=started, timestamp=started)
        blobs = layers.blobs(snapshot, compression=options.compression, level=options.compression_level,
                             force=options.force_compression,
                             epoch=epoch if options.rewrite_timestamp else None)
        status.completed = now_ns()
        job.progress.status(status)
        crashpoint(MID_EXPORT)
        config = docs.image_config(base_config, platform, blobs, epoch=epoch)
        inline = inline_cache(position, blobs, options) if inline_cache is not None else None
        if inline:
            config["moby.buildkit.cache.v0"] = inline
        config_bytes = docs.canonical_json(config)
        config_digest = store.put_bytes(config_bytes)
        config_desc = Descriptor(docs.OCI_CONFIG if oci else docs.DOCKER_CONFIG, config_digest, len(config_bytes))
        annotations = docs.annotations_for(options.annotations, "manifest", platform)
        manifest = docs.manifest(config_desc, blobs, oci=oci, annotations=annotations)
        manifest_bytes = docs.canonical_json(manifest)
        digest = store.put_bytes(manifest_bytes)
        desc_annotations = docs.annotations_for(options.annotations, "manifest-descriptor", platform)
        manifests.append(Descriptor(manifest["mediaType"], digest, len(manifest_bytes), desc_annotations,
                                    platform=platform.to_oci()))
    if len(manifests) == 1 and len(results) == 1:
        only = manifests[0]
        return Descriptor(only.media_type, only.digest, only.size, dict(only.annotations)), config_digest
    index = docs.index(manifests, oci=oci, annotations=docs.annotations_for(options.annotations, "index", None))
    index_bytes = docs.canonical_json(index)
    digest = store.put_bytes(index_bytes)
    return Descriptor(index["mediaType"], digest, len(index_bytes),
                      docs.annotations_for(options.annotations, "index-descriptor", None)), config_digest


def _write_tarball(worker, options: ImageOptions, root: Descriptor, sink=None) -> None:
    from pybuildkit.worker.exporters.ocitar import write_docker_tar, write_oci_tar

    dest = options.dest or "-"
    writer = write_oci_tar if options.kind == "oci" else write_docker_tar
    if sink is not None:
        writer(sink, worker.content, root, options.names)
        return
    if dest == "-":
        writer(sys.stdout.buffer, worker.content, root, options.names)
        return
    tmp = dest + ".tmp"
    with open(tmp, "wb") as handle:
        writer(handle, worker.content, root, options.names)
    import os
    os.replace(tmp, dest)


async def _push(worker, options: ImageOptions, root: Descriptor, job, vertex: str = "") -> None:
    from pybuildkit.worker.registry.reference import parse_reference

    targets = []
    for name in options.names:
        ref = parse_reference(name)
        if options.push_by_digest:
            ref = ref.with_tag(None) if hasattr(ref, "with_tag") else ref
        targets.append(ref)
    started = now_ns()
    status = StatusEvent(id="pushing", vertex=vertex, name=f"pushing {', '.join(options.names)}",
                         started=started, timestamp=started)
    job.progress.status(status)
    hosts = None
    if options.insecure:  # registry.insecure=true: plain HTTP or an unverified certificate
        hosts = worker.registry.hosts
        for ref in targets:
            hosts = hosts.with_insecure(ref.domain)
    try:
        await worker.registry.push(targets, root, hosts=hosts)
    finally:
        status.completed = now_ns()
        job.progress.status(status)
