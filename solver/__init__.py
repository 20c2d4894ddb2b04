"""LLB, the build graph, cache keys and the concurrent scheduler. Imports nothing else of ours."""
