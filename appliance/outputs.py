"""What a build is asked to produce, shared by the client and the daemon: kept free of the
engine's imports so that `pybuildctl` starts quickly (a no-op rebuild is mostly client start-up)."""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from pybuildkit.solver.errors import BuildError

#: the exporter-response keys of a `--opt method=check` build: the frontend's report travels as a
#: subrequest result does in BuildKit, in the response metadata; nothing is solved or exported
CHECK_RESULT_TEXT = "result.txt"
CHECK_RESULT_STATUS = "result.statuscode"

LOCAL_EXPORTERS = ("local", "tar")
IMAGE_EXPORTERS = ("image", "oci", "docker")
#: the outputs a client receives as files (written by the client from its session)
CLIENT_SIDE_EXPORTERS = ("local", "tar", "oci", "docker")


@dataclass(frozen=True)
class Output:
    """One `--output type=T,key=value,...`."""

    type: str
    attrs: Mapping[str, str]


_OUTPUT_KEYS = {
    "local": {"dest", "platform-split", "mode"},
    "tar": {"dest", "platform-split"},
}


def validate_output(output: Output, *, require_dest: bool = True) -> None:
    """`require_dest`: False in the daemon, where the client keeps `dest` to itself."""
    if output.type in LOCAL_EXPORTERS:
        allowed = _OUTPUT_KEYS[output.type]
        for key in output.attrs:
            if key not in allowed:
                raise BuildError(f"--output type={output.type}: unknown option {key!r}",
                                 hint="valid options: " + ", ".join(sorted(allowed)))
        if require_dest and output.type == "local" and not output.attrs.get("dest"):
            raise BuildError("--output type=local requires dest=<dir>")
        return
    if output.type in IMAGE_EXPORTERS:
        from pybuildkit.worker.exporters.options import parse_image_options

        parse_image_options(output.type, output.attrs)
        return
    if output.type == "cacheonly":
        return
    raise BuildError(f"--output: unknown exporter type {output.type!r}",
                     hint="use one of local, tar, image, oci, docker")
