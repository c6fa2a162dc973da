"""The xds control plane's image: a tag whose existence has a source, named beside it, and the
override the xds page documents, applied with the real ``kubectl kustomize``."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
MANIFEST = ROOT / "k8s" / "components" / "xds" / "control-plane.yaml"
PAGE = ROOT / "docs" / "scenarios" / "xds.md"
REPOSITORY = "ghcr.io/wongnai/xds"
#: Release tags of wongnai/xds whose image the project can point to a source for (upstream's
#: image workflow builds one image per `v*` tag). v1.3.0 is named only by a later Helm chart
#: and by no upstream tag that could be checked.
CITED_TAGS = {
    "v1.2.0": "igor-vovk/wongnai-xds-helm index.yaml: appVersion v1.2.0 (charts 0.1.0, 1.2.0-1)",
}


def control_plane_image(text: str) -> str:
    (deployment,) = [
        d
        for d in yaml.safe_load_all(text)
        if d and d["kind"] == "Deployment" and d["metadata"]["name"] == "xds"
    ]
    (container,) = [
        c for c in deployment["spec"]["template"]["spec"]["containers"] if c["name"] == "xds"
    ]
    return container["image"]


def test_the_image_is_a_release_tag_with_a_source():
    image = control_plane_image(MANIFEST.read_text())
    repository, _, tag = image.partition(":")
    assert repository == REPOSITORY
    assert tag in CITED_TAGS, f"{tag} has no source for its existence"
    # The comment beside the image says why that tag exists, and names the override.
    comment = MANIFEST.read_text().split(f"image: {image}")[0].rsplit("containers:", 1)[1]
    assert f"Why {tag} exists" in comment
    assert "docs/scenarios/xds.md" in comment


def test_the_page_names_the_image_that_runs():
    assert f"`{control_plane_image(MANIFEST.read_text())}`" in PAGE.read_text()


def documented_override() -> list[dict]:
    blocks = re.findall(r"```yaml\n(.*?)```", PAGE.read_text(), re.DOTALL)
    overrides = [yaml.safe_load(b) for b in blocks if "images:" in b]
    assert len(overrides) == 1, "the xds page shows one `images:` override"
    return overrides[0]["images"]


@pytest.mark.parametrize(
    ("field", "value", "expected"),
    [
        ("newTag", "master", f"{REPOSITORY}:master"),
        ("digest", "sha256:" + "0" * 64, f"{REPOSITORY}@sha256:" + "0" * 64),
    ],
)
def test_the_documented_override_changes_the_image_that_runs(
    tmp_path, kustomize_dir, field, value, expected
):
    (entry,) = documented_override()
    assert entry["name"] == REPOSITORY
    mine = tmp_path / "mine"
    mine.mkdir()
    overlay = os.path.relpath(ROOT / "k8s" / "overlays" / "xds", mine)
    override = {"name": entry["name"], field: value}
    (mine / "kustomization.yaml").write_text(
        yaml.safe_dump(
            {
                "apiVersion": "kustomize.config.k8s.io/v1beta1",
                "kind": "Kustomization",
                "resources": [overlay],
                "images": [override],
            }
        )
    )
    assert control_plane_image(kustomize_dir(mine)) == expected
