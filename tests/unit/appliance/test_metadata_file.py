"""`--metadata-file` in buildctl's shape."""
from __future__ import annotations

import base64
import json
from pathlib import Path

from pybuildkit.appliance.metadata_file import write_metadata_file


def test_descriptor_is_an_object_and_other_values_stay_strings(tmp_path: Path) -> None:
    """buildctl decodes base64-encoded JSON objects in the exporter response, so
    `containerimage.descriptor` is written as an object; digests stay strings."""
    descriptor = {"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": "sha256:ab", "size": 7}
    response = {"containerimage.digest": "sha256:ab", "containerimage.config.digest": "sha256:cd",
                "containerimage.descriptor": base64.b64encode(json.dumps(descriptor).encode()).decode(),
                "image.name": "docker.io/library/app:latest"}
    path = tmp_path / "md.json"
    write_metadata_file(path, response, build_ref="abc123")
    data = json.loads(path.read_text())
    assert data["containerimage.descriptor"] == descriptor
    assert data["containerimage.digest"] == "sha256:ab"
    assert data["image.name"] == "docker.io/library/app:latest"
    assert data["buildx.build.ref"] == "pybuildkit/pybuildkit0/abc123"
    assert list(data) == sorted(data)  # Go's MarshalIndent of a map
