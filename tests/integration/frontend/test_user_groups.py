"""USER and the groups a step's process gets, read from the image's own /etc/passwd and /etc/group.

Checked with `id` inside real RUN steps, as BuildKit's own USER tests do.
"""
from __future__ import annotations

from tests.integration.frontend.test_realistic_dockerfiles import _build, _context

USERS = """\
FROM busybox AS build
RUN addgroup -g 1500 extra && addgroup -g 1600 other && adduser -D -u 1234 alice \\
    && addgroup alice extra && addgroup alice other && mkdir /dest && chmod 777 /dest
USER alice
RUN id > /dest/by-name
USER 1234
RUN id > /dest/by-uid
USER alice:extra
RUN id > /dest/name-group
USER 1234:1600
RUN id > /dest/uid-gid
USER 4242
RUN id > /dest/unknown-uid
USER root
RUN id > /dest/root
FROM scratch
COPY --from=build /dest /
"""


def _ids(text: str) -> dict[str, str]:
    return dict(part.split("=", 1) for part in text.split())


def test_user_by_name_or_uid_gets_its_supplementary_groups(pybuildctl, tmp_path) -> None:
    """"When the user doesn't have a primary group then the image (or the next instructions) will
    be run with the root group" and otherwise with the user's groups: BuildKit resolves `USER name`
    and `USER uid` against the image's /etc/passwd and /etc/group, so `id` in the step lists every
    group that names the user as a member."""
    out = tmp_path / "out"
    _build(pybuildctl, _context(tmp_path, USERS), out)
    for name in ("by-name", "by-uid"):
        ids = _ids((out / name).read_text())
        assert ids["uid"] == "1234(alice)", name
        assert ids["gid"] == "1234(alice)", name
        assert set(ids["groups"].split(",")) == {"1234(alice)", "1500(extra)", "1600(other)"}, name


def test_user_with_a_group_gets_exactly_that_group(pybuildctl, tmp_path) -> None:
    """"USER <user>[:<group>]": with a group given, the process runs with that group as its only
    group (no supplementary groups from /etc/group), by name or by number."""
    out = tmp_path / "out"
    _build(pybuildctl, _context(tmp_path, USERS), out)
    named = _ids((out / "name-group").read_text())
    assert named["uid"] == "1234(alice)"
    assert named["gid"] == "1500(extra)"
    assert named.get("groups", "1500(extra)") == "1500(extra)"
    numeric = _ids((out / "uid-gid").read_text())
    assert numeric["gid"] == "1600(other)"
    assert numeric.get("groups", "1600(other)") == "1600(other)"
    assert (out / "root").read_text() == "uid=0(root) gid=0(root) groups=0(root),10(wheel)\n"


def test_primary_group_leads_the_group_list(pybuildctl, tmp_path) -> None:
    """BuildKit's "testUserAdditionalGids": "the primary GID is also included in the additional
    GID list" (CVE-2023-25173), so `id` shows it first; a uid missing from /etc/passwd runs
    with group root: `uid=1234 gid=0(root) groups=0(root)`."""
    out = tmp_path / "out"
    _build(pybuildctl, _context(tmp_path, USERS), out)
    assert (out / "by-name").read_text() == "uid=1234(alice) gid=1234(alice) groups=1234(alice),1500(extra),1600(other)\n"
    assert (out / "uid-gid").read_text() == "uid=1234(alice) gid=1600(other) groups=1600(other)\n"
    assert (out / "unknown-uid").read_text() == "uid=4242 gid=0(root) groups=0(root)\n"
