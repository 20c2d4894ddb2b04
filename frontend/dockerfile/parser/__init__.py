"""Dockerfile parser: text to AST, as upstream's parser package."""
from pybuildkit.frontend.dockerfile.parser.directives import detect_directive, detect_syntax
from pybuildkit.frontend.dockerfile.parser.node import DockerfileParseError, Heredoc, Node, go_quote
from pybuildkit.frontend.dockerfile.parser.parser import (Directives, ParseResult, ParseWarning, chomp_heredoc_content,
                                                          heredocs_from_line, must_parse_heredoc, parse,
                                                          parse_heredoc, parse_words, split_command)

__all__ = ["Directives", "DockerfileParseError", "Heredoc", "Node", "ParseResult", "ParseWarning",
           "chomp_heredoc_content", "detect_directive", "detect_syntax", "go_quote", "heredocs_from_line",
           "must_parse_heredoc", "parse", "parse_heredoc", "parse_words", "split_command"]
