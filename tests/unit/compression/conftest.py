from __future__ import annotations

import os
import random
from pathlib import Path

import pytest

from pybuildkit.worker.layer.diff import changes_between, write_layer_tar


CAP_NET_RAW = b"\x01\x00\x00\x02\x00\x20\x00\x00" + b"\x00" * 12  # v2 capability set: cap_net_raw=ep


@pytest.fixture(scope="session")
def layer_tar(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small layer like W6's: random bytes, text, small files, a link of each kind, an xattr."""
    root = tmp_path_factory.mktemp("tree")
    rng = random.Random(7)
    (root / "bin").mkdir()
    (root / "bin" / "random").write_bytes(rng.randbytes(300_000))
    words = ["%x" % rng.getrandbits(20) for _ in range(300)]
    (root / "share").mkdir()
    (root / "share" / "text").write_text("\n".join(" ".join(rng.choices(words, k=10)) for _ in range(4000)))
    for index in range(30):
        (root / "share" / f"small-{index}").write_text("s" * index)
    (root / "share" / "empty").write_bytes(b"")
    os.symlink("../bin/random", root / "share" / "link")
    os.link(root / "bin" / "random", root / "bin" / "hardlink")
    try:
        os.setxattr(root / "bin" / "random", "security.capability", CAP_NET_RAW)
    except OSError:
        pass
    tar = tmp_path_factory.mktemp("tar") / "layer.tar"
    with open(tar, "wb") as out:
        write_layer_tar(changes_between(None, root), root, out, source_date_epoch=1_700_000_000)
    return tar
