"""Dockerfile parser: text to AST, as upstream's frontend/dockerfile/parser package."""
from pybuildkit.frontend.dockerfile.parser.directives import (Directive, DirectiveParser, Directives,
                                                              detect_directive, detect_syntax, parse_directive)
from pybuildkit.frontend.dockerfile.parser.errors import DockerfileParseError
from pybuildkit.frontend.dockerfile.parser.heredoc import (chomp_heredoc_content, heredocs_from_line,
                                                           must_parse_heredoc, parse_heredoc)
from pybuildkit.frontend.dockerfile.parser.line_parsers import parse_words
from pybuildkit.frontend.dockerfile.parser.node import Heredoc, Node, go_quote
from pybuildkit.frontend.dockerfile.parser.parser import ParseResult, ParseWarning, parse
from pybuildkit.frontend.dockerfile.parser.split_command import split_command

__all__ = ["Directive", "DirectiveParser", "Directives", "DockerfileParseError", "Heredoc", "Node", "ParseResult",
           "ParseWarning", "chomp_heredoc_content", "detect_directive", "detect_syntax", "go_quote",
           "heredocs_from_line", "must_parse_heredoc", "parse", "parse_directive", "parse_heredoc", "parse_words",
           "split_command"]
