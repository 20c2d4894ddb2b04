"""Image layers: applying them safely, and diffing snapshots into them."""
