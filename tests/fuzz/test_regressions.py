"""One named test per class of hostile Dockerfile the first fuzzer found (issue 15), with the
exact input shape: each must end in a typed error naming the place, quickly and without a crash."""
from __future__ import annotations

import pytest
from pybuildkit.solver.definition import load_definition, parse_definition
from pybuildkit.solver.errors import BuildError, InvalidDefinitionError

from tests.fuzz.harness import Kind, run_definition, run_frontend


def _rejected(dockerfile: bytes, attrs: dict[str, str] | None = None) -> str:
    outcome = run_frontend(dockerfile, attrs)
    assert outcome.kind == Kind.clean, outcome.detail
    assert not outcome.slow, f"took {outcome.seconds:.2f} s"
    return outcome.detail


@pytest.mark.parametrize("value", ["12x", "abc", "2:3", "²", "1" * 5000])
def test_bad_integer_in_healthcheck_retries_names_the_flag(value: str) -> None:
    message = _rejected(f"FROM scratch\nHEALTHCHECK --retries={value} CMD true\n".encode())
    assert "--retries" in message and "Dockerfile:2" in message


@pytest.mark.parametrize("port", ["12x", "abc", "99999", "1-99999999999", "a-b"])
def test_bad_exposed_port_names_the_instruction(port: str) -> None:
    assert "EXPOSE" in _rejected(f"FROM scratch\nEXPOSE {port}\n".encode())


@pytest.mark.parametrize("attrs", [{"shm-size": "12x"}, {"ulimit": "nofile=abc"}, {"ulimit": "nofile=2:3x"}])
def test_bad_integer_frontend_attribute_names_it(attrs: dict[str, str]) -> None:
    message = _rejected(b"FROM scratch\n", attrs)
    assert ("shm-size" in message) or ("ulimit nofile" in message)


@pytest.mark.parametrize("size", ["1e999", "nan", "1.2.3"])
def test_bad_cache_mount_size_is_a_clean_error(size: str) -> None:
    _rejected(f"FROM scratch\nRUN --mount=type=tmpfs,target=/t,size={size} true\n".encode())


def test_deeply_nested_substitution_is_bounded_without_recursion_error() -> None:
    depth = 5000
    message = _rejected(b"FROM scratch\nENV A=" + b"${A:-" * depth + b"x" + b"}" * depth + b"\n")
    assert "nested more than" in message and "Dockerfile:2" in message


def test_deeply_nested_json_form_is_not_a_recursion_error() -> None:
    run_shape = b"FROM scratch\nCMD " + b"[" * 60000 + b"\n"
    outcome = run_frontend(run_shape)
    assert outcome.kind != Kind.uncaught, outcome.detail


@pytest.mark.parametrize("raw", [b"\xff\xfe", b"\xed\xa0\x80", b"\xc3"])
def test_undecodable_bytes_are_reported_with_their_position(raw: bytes) -> None:
    message = _rejected(b"FROM scratch\nRUN echo " + raw + b" done\n")
    assert f"invalid UTF-8 byte {raw[:1].hex()}" in message
    assert "line 2, column 10" in message


def test_undecodable_bytes_in_a_comment_are_ignored() -> None:
    assert run_frontend(b"# caf\xe9\nFROM scratch\n").kind == Kind.converted


def test_expansion_bomb_stops_at_the_bound_naming_variable_and_line() -> None:
    chain = b"".join(b"ENV V%d=${V%d}${V%d}\n" % (i + 1, i, i) for i in range(1, 21))
    message = _rejected(b"FROM scratch\nENV V1=aaaaaaaaaa\n" + chain)
    assert "${V17}" in message and "Dockerfile:19" in message and "limit of 1048576" in message


def test_expansion_bomb_in_meta_args_stops_too() -> None:
    chain = b"".join(b"ARG V%d=${V%d}${V%d}\n" % (i + 1, i, i) for i in range(1, 21))
    assert "${V17}" in _rejected(b"ARG V1=aaaaaaaaaa\n" + chain + b"FROM scratch\n")


def test_replacement_bomb_counts_what_the_replacement_adds() -> None:
    dockerfile = (b"FROM scratch\nENV A=" + b"x" * 60000 + b"\n"
                  b"ENV B=${A//x/" + b"y" * 100 + b"}\n")
    assert "${A}" in _rejected(dockerfile)


def test_expansion_bound_is_a_parameter() -> None:
    from pybuildkit.frontend.dockerfile.shell import Lex

    with pytest.raises(BuildError, match="limit of 10 characters"):
        Lex(max_expansion=10).process_word("$A$A", {"A": "123456"})
    assert Lex(max_expansion=12).process_word("$A$A", {"A": "123456"}) == "123456123456"


def test_five_megabyte_single_line_is_rejected_quickly() -> None:
    message = _rejected(b"FROM scratch\nRUN echo " + b"a" * 5_000_000 + b"\n")
    assert "max allowed size" in message


def test_long_word_just_under_the_line_limit_converts_quickly() -> None:
    outcome = run_frontend(b"FROM scratch\nENV A=" + b"a" * 65000 + b"\nENV B=$A\n")
    assert outcome.kind == Kind.converted and not outcome.slow, outcome


def test_definition_chain_deeper_than_the_recursion_limit_loads() -> None:
    from pybuildkit.solver.llb.marshal import digest_of
    from pybuildkit.solver.pb import ops_pb2 as pb

    raw = [pb.Op(source=pb.SourceOp(identifier="docker-image://docker.io/library/busybox:latest"))
           .SerializeToString()]
    for i in range(3000):
        op = pb.Op(file=pb.FileOp(actions=[pb.FileAction(input=0, secondaryInput=-1, output=0,
                                                           mkdir=pb.FileActionMkDir(path=f"/d{i}", mode=0o755))]))
        op.inputs.add(digest=digest_of(raw[-1]), index=0)
        raw.append(op.SerializeToString())
    terminal = pb.Op()
    terminal.inputs.add(digest=digest_of(raw[-1]), index=0)
    definition = pb.Definition()
    getattr(definition, "def").extend([*raw, terminal.SerializeToString()])
    graph = load_definition(parse_definition(definition.SerializeToString()))
    assert len(graph.topological()) == 3001


def test_garbage_definition_bytes_are_a_clean_error() -> None:
    with pytest.raises(InvalidDefinitionError):
        parse_definition(b"\x0a\xff\xff\xff\xff\x0f")
    assert run_definition(b"\x0a" * 1000).kind == Kind.clean


def test_undecodable_bytes_in_a_heredoc_comment_line_are_reported() -> None:
    message = _rejected(b"FROM scratch\nRUN <<EOF\n#!/bin/\xd8wk\nEOF\n")
    assert "invalid UTF-8 byte d8 at line 3" in message


def test_long_unknown_instruction_is_rejected_quickly() -> None:
    assert "unknown instruction" in _rejected(b"FROM scratch\n" + b"${A:-" * 10000 + b"\n")


@pytest.mark.parametrize("option", ["mode=747474747474741", "uid=100299999999999999999999", "gid=-1"])
def test_out_of_range_mount_numbers_name_the_option(option: str) -> None:
    key = option.split("=")[0]
    assert f"for {key}" in _rejected(f"FROM scratch\nRUN --mount=type=cache,target=/c,{option} true\n".encode())


def test_a_chain_of_two_thousand_run_steps_converts_without_recursion() -> None:
    """Found by hand after the campaign (its inputs are short): each RUN is one more link in a
    chain the LLB marshaller used to walk recursively, a RecursionError from about 1,000 steps."""
    dockerfile = b"FROM scratch\n" + b"".join(b"RUN echo %d\n" % i for i in range(2000))
    outcome = run_frontend(dockerfile)
    assert outcome.kind == Kind.converted, outcome.detail
