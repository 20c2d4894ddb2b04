"""The `# check=` directive's syntax, as BuildKit parses it (Docker docs, "Checking your build
configuration")."""
from __future__ import annotations

import pytest

from pybuildkit.frontend.dockerfile.checks import Linter, parse_check_config
from pybuildkit.frontend.dockerfile.instructions import DockerfileError


def test_skip_error_and_experimental_combine_with_semicolons() -> None:
    """"pass both the `skip` and `error` parameters separated by a semi-colon (`;`)"."""
    config = parse_check_config("skip=JSONArgsRecommended,StageNameCasing;error=true")
    assert config.skip == {"JSONArgsRecommended", "StageNameCasing"}
    assert config.error and not config.skip_all


def test_experimental_checks_are_off_unless_enabled_and_beat_skip() -> None:
    """"Experimental checks are disabled by default" and "the `experimental` directive takes
    precedence over the `skip` directive"."""
    assert not Linter(parse_check_config("")).enabled("CopyIgnoredFile")
    both = Linter(parse_check_config("skip=all;experimental=all"))
    assert both.enabled("CopyIgnoredFile")
    assert not both.enabled("FromAsCasing")


@pytest.mark.parametrize("text, message", [
    ("skip", "invalid check option 'skip'"),
    ("ignore=all", "invalid check option 'ignore'"),
    ("error=maybe", "failed to parse check option 'error=maybe'"),
])
def test_malformed_options_are_errors(text: str, message: str) -> None:
    """An option that is not `key=value` with a known key fails the build (BuildKit's
    "invalid check option")."""
    with pytest.raises(DockerfileError) as caught:
        parse_check_config(text)
    assert message in caught.value.message
