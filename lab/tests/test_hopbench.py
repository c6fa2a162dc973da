"""The hop benchmark's variants come from the shipped Envoy config, one setting removed at a time:
no second copy of the config to drift from it, and a clear error once a setting is gone."""

from __future__ import annotations

import pytest
from hellolb_lab import envoy, hopbench
from hellolb_lab.errors import LabError
from hellolb_lab.procs import find_binary


@pytest.fixture(scope="module", params=["proxy", "sidecar"])
def shipped(request, overlay_of):
    return overlay_of(request.param).envoy_config


def by_name(cpus: int = 2) -> dict[str, hopbench.Variant]:
    return {v.name: v for v in hopbench.variants(cpus)}


def test_each_removal_variant_differs_from_the_shipped_config_by_that_setting_only(shipped):
    for name, remove in hopbench.SETTINGS.items():
        config = hopbench.variant_config(shipped, by_name()[f"- {name}"])
        assert config != shipped
        again = hopbench.variant_config(shipped, hopbench.Variant("", "", drop=(name,)))
        assert again == config
        # Removing it once more finds nothing: that setting, and only it, is gone.
        assert remove(config) is False
        for other, remove_other in hopbench.SETTINGS.items():
            if other != name:
                assert remove_other(hopbench.variant_config(shipped, by_name()[f"- {name}"]))


def test_bare_has_none_of_the_settings_and_keeps_the_route_and_cluster(shipped):
    bare = hopbench.variant_config(shipped, by_name()[hopbench.BARE])
    assert not any(remove(bare) for remove in hopbench.SETTINGS.values())
    assert envoy.dns_names(bare) == envoy.dns_names(shipped)
    assert [c["lb_policy"] for c in bare["static_resources"]["clusters"]] == ["ROUND_ROBIN"]


def test_the_shipped_variant_is_the_config_as_shipped(shipped):
    assert hopbench.variant_config(shipped, by_name()[hopbench.SHIPPED]) == shipped


def test_a_setting_missing_from_the_config_is_a_clear_error(shipped):
    bare = hopbench.variant_config(shipped, by_name()[hopbench.BARE])
    with pytest.raises(LabError, match="no access_log to remove"):
        hopbench.variant_config(bare, by_name()["- access_log"])


def test_placements_need_two_cpus():
    assert not any(v.placement != hopbench.Placement() for v in hopbench.variants(1))
    assert any(v.placement != hopbench.Placement() for v in hopbench.variants(2))


@pytest.mark.parametrize("variant", [hopbench.BARE, "small buffers", "- lean"])
def test_envoy_accepts_the_variants_that_change_fields(shipped, variant, tmp_path):
    config = hopbench.variant_config(shipped, by_name()[variant])
    adapted = envoy.adapt(config, dns=("127.0.0.1", 53), listen_ip="127.0.0.1")
    envoy.validate(find_binary("envoy"), envoy.write(adapted, tmp_path / "envoy.yaml"))
