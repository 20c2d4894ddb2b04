"""buildkitd.toml-format configuration: what it accepts and how it names mistakes."""
from __future__ import annotations

from pathlib import Path

import pytest

from pybuildkit.appliance.config import load_config, parse_config
from pybuildkit.solver.errors import ConfigError


def test_registry_mirrors_and_worker_settings(tmp_path: Path) -> None:
    path = tmp_path / "pybuildkitd.toml"
    path.write_text(
        'root = "/srv/pbk"\ninsecure-entitlements = ["network.host"]\n'
        '[registry."docker.io"]\nmirrors = ["127.0.0.1:5000"]\n'
        '[registry."127.0.0.1:5000"]\nhttp = true\n'
        '[worker.oci]\nbinary = "crun"\nsnapshotter = "native"\nmax-parallelism = 3\n')
    config = load_config(path)
    assert config.root == Path("/srv/pbk")
    assert config.insecure_entitlements == ("network.host",)
    assert config.registries["docker.io"].mirrors == ("127.0.0.1:5000",)
    assert config.registries["127.0.0.1:5000"].http is True
    assert (config.worker.binary, config.worker.snapshotter, config.worker.max_parallelism) == ("crun", "native", 3)


def test_root_flag_overrides_the_file(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    path.write_text('root = "/from/file"\n')
    assert load_config(path, root=tmp_path / "flag").root == tmp_path / "flag"


def test_invalid_toml_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "broken.toml"
    path.write_text("[worker.oci\n")
    with pytest.raises(ConfigError, match="broken.toml: invalid TOML"):
        load_config(path)


def test_unknown_snapshotter_names_the_key() -> None:
    with pytest.raises(ConfigError, match="worker.oci.snapshotter: unknown snapshotter 'zfs'"):
        parse_config({"worker": {"oci": {"snapshotter": "zfs"}}})


def test_unknown_entitlement_is_refused() -> None:
    with pytest.raises(ConfigError, match="unknown entitlement 'network.everything'"):
        parse_config({"insecure-entitlements": ["network.everything"]})


def test_wrong_type_names_the_key() -> None:
    with pytest.raises(ConfigError, match=r'registry."r".mirrors must be a list'):
        parse_config({"registry": {"r": {"mirrors": "not-a-list"}}})


def test_missing_file_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(tmp_path / "nope.toml")


def test_exporter_image_defaults_are_read_and_checked(tmp_path) -> None:
    """pybuildkit's `[exporter.image]` table (BuildKit has none; buildx issue 2922)."""
    from pybuildkit.appliance.config import parse_config
    from pybuildkit.solver.errors import ConfigError

    config = parse_config({"exporter": {"image": {"compression": "zstd", "oci-mediatypes": True}}})
    assert dict(config.image_exporter_defaults) == {"compression": "zstd", "oci-mediatypes": "true"}
    import pytest

    with pytest.raises(ConfigError, match="exporter.image"):
        parse_config({"exporter": {"image": {"compression": "lz4"}}})
    with pytest.raises(ConfigError, match="unknown key 'exporter.image.compresion'"):
        parse_config({"exporter": {"image": {"compresion": "zstd"}}})


def test_frontend_expansion_bound_defaults_to_one_mebi_and_is_configurable(tmp_path: Path) -> None:
    assert parse_config({}, root=tmp_path).frontend.max_expansion_size == 1 << 20
    assert parse_config({"frontend": {"max-expansion-size": 4096}}, root=tmp_path).frontend.max_expansion_size == 4096
    with pytest.raises(ConfigError, match="frontend.max-expansion-size"):
        parse_config({"frontend": {"max-expansion-size": 0}}, root=tmp_path)


def test_frontend_budget_defaults_to_thirty_seconds_and_512_mebi(tmp_path: Path) -> None:
    frontend = parse_config({}, root=tmp_path).frontend
    assert (frontend.time_budget, frontend.memory_budget) == (30.0, 512 << 20)
    frontend = parse_config({"frontend": {"time-budget": 2.5, "memory-budget": 1 << 20}}, root=tmp_path).frontend
    assert (frontend.time_budget, frontend.memory_budget) == (2.5, 1 << 20)


@pytest.mark.parametrize("table, key", [({"time-budget": 0}, "frontend.time-budget"),
                                        ({"time-budget": "30s"}, "frontend.time-budget"),
                                        ({"memory-budget": -1}, "frontend.memory-budget"),
                                        ({"memory-budget": 1.5}, "frontend.memory-budget"),
                                        ({"time-budgets": 3}, "unknown key 'frontend.time-budgets'")])
def test_a_bad_frontend_budget_names_its_key(tmp_path: Path, table: dict, key: str) -> None:
    with pytest.raises(ConfigError, match=key):
        parse_config({"frontend": table}, root=tmp_path)


def test_gc_policies_read_sizes_durations_and_shares_of_the_disk_as_buildkit_does() -> None:
    config = parse_config({"worker": {"oci": {"gcpolicy": [
        {"filters": ["type==source.local"], "keepDuration": "48h", "maxUsedSpace": "512MB"},
        {"all": True, "keepBytes": 1024, "minFreeSpace": "20%", "keepDuration": 3600},
    ]}}})
    first, second = config.worker.gc_policies
    assert first.filters == ("type==source.local",) and first.keep_duration == 48 * 3600
    assert first.max_used_space.of(0) == 512_000_000
    assert second.all and second.keep_duration == 3600
    assert second.reserved_space.of(0) == 1024  # keepBytes: the old name of reservedSpace
    assert second.min_free_space.of(1_000_000) == 200_000


def test_a_misspelled_gc_policy_key_names_the_key_and_the_policy() -> None:
    with pytest.raises(ConfigError, match=r"gcpolicy\[0\]: unknown key 'keepDurations'"):
        parse_config({"worker": {"oci": {"gcpolicy": [{"keepDurations": "1h"}]}}})


def test_a_gc_size_that_is_not_one_is_an_error_naming_the_key() -> None:
    with pytest.raises(ConfigError, match=r"gcpolicy\[0\]\.maxUsedSpace: 'lots' is not a size"):
        parse_config({"worker": {"oci": {"gcpolicy": [{"maxUsedSpace": "lots"}]}}})
