"""Snapshots: immutable layer stacks, mounted with overlayfs, fuse-overlayfs or copied natively."""
