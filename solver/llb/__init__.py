"""LLB: BuildKit's build graph as protobuf, and a Python builder API for it."""
