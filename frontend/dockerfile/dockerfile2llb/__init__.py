"""Dockerfile to LLB conversion."""
