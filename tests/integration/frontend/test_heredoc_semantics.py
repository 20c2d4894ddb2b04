"""Here-documents in RUN, COPY and ADD, checked file by file after real builds.

Every expectation comes from BuildKit's Dockerfile reference, section "Here-Documents", or from
what BuildKit's shell lexer does with a heredoc body; each test quotes the sentence it checks.
"""
from __future__ import annotations

from pathlib import Path

from tests.integration.frontend.test_realistic_dockerfiles import _build, _context


def _files(pybuildctl, tmp_path: Path, dockerfile: str, *extra: str) -> Path:
    out = tmp_path / "out"
    _build(pybuildctl, _context(tmp_path, dockerfile), out, *extra)
    return out


EXPANSION = """\
FROM busybox AS build
ARG name=world
ENV greet=hi
COPY <<EOF /dest/unquoted
Hello ${name}, $greet!
EOF
COPY <<'EOF' /dest/single
Hello ${name}!
EOF
COPY <<"EOF" /dest/double
Hello ${name}!
EOF
ADD <<EOF /dest/added
added ${name}
EOF
FROM scratch
COPY --from=build /dest /
"""


def test_copy_heredoc_expands_args_and_env_unless_the_delimiter_is_quoted(pybuildctl, tmp_path) -> None:
    """Dockerfile reference, Here-Documents: "the variable is expanded when the `COPY`
    instruction gets executed" and "If instead you were to quote any part of the here-document
    word `EOT`, the variable would not be expanded at build-time." (ADD bodies alike.)"""
    out = _files(pybuildctl, tmp_path, EXPANSION)
    assert (out / "unquoted").read_text() == "Hello world, hi!\n"
    assert (out / "single").read_text() == "Hello ${name}!\n"
    assert (out / "double").read_text() == "Hello ${name}!\n"
    assert (out / "added").read_text() == "added world\n"


QUOTES = """\
FROM busybox AS build
ARG name=world
COPY <<EOF /dest/q1
Hello '${name}'!
EOF
COPY <<EOF /dest/q2
Hello "${name}"!
EOF
COPY <<'EOF' /dest/q3
Hello '${name}' "${name}"!
EOF
FROM scratch
COPY --from=build /dest /
"""


def test_quotes_in_a_heredoc_body_are_ordinary_characters(pybuildctl, tmp_path) -> None:
    """"Regular here-doc variable expansion and tab stripping rules apply" (Dockerfile reference),
    and in those rules "the double-quote character (\") will not be treated specially within a
    here-document": quotes are kept and do not stop expansion, so `'${name}'` gives `'world'`."""
    out = _files(pybuildctl, tmp_path, QUOTES)
    assert (out / "q1").read_text() == "Hello 'world'!\n"
    assert (out / "q2").read_text() == 'Hello "world"!\n'
    assert (out / "q3").read_text() == "Hello '${name}' \"${name}\"!\n"


BACKSLASHES = """\
FROM scratch
COPY <<EOF /slash-newline
a\\
b
EOF
COPY <<EOF /slash-slash
\\\\
EOF
COPY <<EOF /slash-dollar
\\$HOME
EOF
COPY <<"EOF" /raw-slash-newline
a\\
b
EOF
COPY <<"EOF" /raw-slash-slash
\\\\
EOF
COPY <<"EOF" /raw-slash-dollar
\\$HOME
EOF
"""


def test_backslash_in_an_unquoted_heredoc_escapes_and_is_removed(pybuildctl, tmp_path) -> None:
    """Under the here-doc rules the reference points to, in an unquoted here-document "the
    backslash in the input will behave as the backslash inside double-quotes", as BuildKit's lexer
    applies it: `\\\\` gives one backslash, `\\$` a literal `$`, a backslash at a line's end is
    dropped (the newline stays); a quoted delimiter keeps every backslash."""
    out = _files(pybuildctl, tmp_path, BACKSLASHES)
    assert (out / "slash-newline").read_text() == "a\nb\n"
    assert (out / "slash-slash").read_text() == "\\\n"
    assert (out / "slash-dollar").read_text() == "$HOME\n"
    assert (out / "raw-slash-newline").read_text() == "a\\\nb\n"
    assert (out / "raw-slash-slash").read_text() == "\\\\\n"
    assert (out / "raw-slash-dollar").read_text() == "\\$HOME\n"


INDENT = """\
FROM busybox AS build
COPY <<EOF /dest/copy-keeps
\tkept
EOF
COPY <<-EOF /dest/copy-strips
\tstripped
\t\ttwice
EOF
RUN <<-EOF
\techo "run strips" > /dest/run-strips
EOF
RUN <<-EOF sh > /dest/run-shell-strips
\techo "
\tshell strips"
\tEOF
FROM scratch
COPY --from=build /dest /
"""


def test_dash_heredoc_strips_leading_tabs_and_the_body_keeps_its_final_newline(pybuildctl, tmp_path) -> None:
    """"If the redirection symbol is <<-, all leading tab characters will be stripped from input
    lines and the line containing the trailing delimiter" (the here-doc rules the reference
    applies); without the dash tabs are kept, and the body keeps its final newline."""
    out = _files(pybuildctl, tmp_path, INDENT)
    assert (out / "copy-keeps").read_text() == "\tkept\n"
    assert (out / "copy-strips").read_text() == "stripped\ntwice\n"
    assert (out / "run-strips").read_text() == "run strips\n"
    assert (out / "run-shell-strips").read_text() == "\nshell strips\n"


RUN_SHELL = """\
FROM busybox AS build
ARG name=world
ENV greet=hi
RUN mkdir /dest
RUN <<EOF
greeting="Hello"
echo "${greeting} ${name}, $greet!" > /dest/script
EOF
RUN cat <<EOF > /dest/cat-unquoted
$greet '$name'
EOF
RUN cat <<'EOF' > /dest/cat-quoted
$greet '$name'
EOF
RUN cat <<EOF1 | tr a-z A-Z > /dest/two; cat <<EOF2 >> /dest/two
first
EOF1
second
EOF2
RUN <<EOF 3<<IN awk -f -
BEGIN { while ((getline line < "/proc/self/fd/3") > 0) print tolower(line) > "/dest/fd3" }
EOF
HELLO Fd
IN
RUN <<EOF
#!/bin/awk -f
BEGIN { print "from awk" > "/dest/shebang" }
EOF
FROM scratch
COPY --from=build /dest /
"""


def test_run_heredoc_bodies_are_expanded_by_the_shell(pybuildctl, tmp_path) -> None:
    """"If the command only contains a here-document, its contents is evaluated with the default
    shell", "shebang header can be used to define an interpreter", and "More complex examples may
    use multiple here-documents": the shell gets the heredocs, so it expands unquoted bodies
    (shell variables and the step's ARG/ENV) and keeps quoted ones literal."""
    out = _files(pybuildctl, tmp_path, RUN_SHELL)
    assert (out / "script").read_text() == "Hello world, hi!\n"
    assert (out / "cat-unquoted").read_text() == "hi 'world'\n"
    assert (out / "cat-quoted").read_text() == "$greet '$name'\n"
    assert (out / "two").read_text() == "FIRST\nsecond\n"
    assert (out / "fd3").read_text() == "hello fd\n"
    assert (out / "shebang").read_text() == "from awk\n"


ONBUILD_PARENT = """\
FROM busybox
ONBUILD RUN <<EOF
echo "hello from the trigger" > /dest
EOF
ONBUILD COPY <<EOF /copied
copied by the trigger
EOF
"""


def test_heredocs_in_onbuild_triggers_run_in_the_child_build(pybuildctl, registry_host, tmp_path) -> None:
    """ONBUILD triggers may hold heredocs (BuildKit's test "OnBuildHeredoc"): the trigger is stored
    with its body and runs when a child build uses the image as its base."""
    (tmp_path / "parent").mkdir()
    (tmp_path / "child").mkdir()
    parent = _context(tmp_path / "parent", ONBUILD_PARENT)
    image = f"{registry_host}/dfsem/onbuild-heredoc:latest"
    pybuildctl(["--frontend", "dockerfile.v0", "--local", f"context={parent}", "--local", f"dockerfile={parent}",
                "--output", f"type=image,name={image},push=true,registry.insecure=true"])
    child = _context(tmp_path / "child", f"FROM {image} AS base\nFROM scratch\nCOPY --from=base /dest /copied /\n")
    out = tmp_path / "out"
    _build(pybuildctl, child, out)
    assert (out / "dest").read_text() == "hello from the trigger\n"
    assert (out / "copied").read_text() == "copied by the trigger\n"
