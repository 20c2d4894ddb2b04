"""The content store: blobs by digest."""
