"""pybuildctl reads buildctl's flag syntax."""
from __future__ import annotations

import pytest

from pybuildkit.appliance.cli.main import UsageError, parse_csv_kv, parse_locals, parse_outputs


def test_output_with_quoted_name_list() -> None:
    [out] = parse_outputs(['type=image,"name=a.io/x:1,b.io/y:2",push=true'])
    assert out.type == "image"
    assert out.attrs == {"name": "a.io/x:1,b.io/y:2", "push": "true"}


def test_output_needs_a_type() -> None:
    with pytest.raises(UsageError, match="type=... is required"):
        parse_outputs(["dest=out"])


def test_field_without_equals_names_the_flag() -> None:
    with pytest.raises(UsageError, match="--secret: invalid value 'oops'"):
        parse_csv_kv("id=x,oops", "--secret")


def test_local_needs_name_and_dir() -> None:
    with pytest.raises(UsageError, match="expected NAME=DIR"):
        parse_locals(["context"])
