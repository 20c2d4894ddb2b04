"""The Dockerfile frontend (dockerfile.v0): parser, shell lexer, instructions, conversion to LLB."""
