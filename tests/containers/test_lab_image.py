"""The lab as an image (lab/Dockerfile): a scenario runs inside the container with its checks,
the picture comes out on the terminal, and the results land in the mounted folder."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import podrun
import pytest

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
#: The README's command, less what a test cannot give (-i: no keyboard here), plus no network
#: at all: the lab needs nothing but the container's own loopback.
RUN = ["run", "--rm", "-t", "--network=none"]


def lab(engine, image: str, results: Path, *argv: str, timeout: float = 600):
    return subprocess.run(
        [
            engine.name,
            *RUN,
            f"--user={os.getuid()}:{os.getgid()}",
            f"--volume={results}:/lab/.lab",
            image,
            *argv,
        ],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
        env=podrun.engine_env(),
    )


def test_a_scenario_runs_with_its_checks_and_writes_to_the_mounted_folder(
    engine, lab_image, tmp_path
):
    result = lab(engine, lab_image, tmp_path, "run", "headless", "--assert")
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    assert "[ok] no failed RPC" in result.stdout
    # The picture: one row of answer marks per server, drawn for a terminal.
    assert "server-1" in result.stdout
    assert any(mark in result.stdout for mark in "▁▂▃▄▅▆▇█")
    logs = tmp_path / "runs" / "headless"
    assert (logs / "dns.log").is_file()
    assert (logs / "server-1.log").stat().st_size > 0


@pytest.mark.skipif(
    os.environ.get("LAB_IMAGE_TOUR") != "1",
    reason="the whole tour takes about 5 min: LAB_IMAGE_TOUR=1 make containers runs it",
)
def test_the_tour_passes_its_checks_inside_the_container(engine, lab_image, tmp_path):
    result = lab(engine, lab_image, tmp_path, "tour", "--assert", timeout=1500)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    assert "| scenario" in result.stdout


@pytest.mark.parametrize("command", ["tour", "uneven", "run"])
def test_each_lab_command_starts_in_the_image(engine, lab_image, tmp_path, command):
    result = lab(engine, lab_image, tmp_path, command, "--help", timeout=120)
    assert result.returncode == 0, result.stderr
    assert f"usage: hellolb-lab {command}" in result.stdout


def test_the_image_carries_the_overlays_and_leaves_out_tests_and_docs(engine, lab_image):
    """lab/Dockerfile.dockerignore replaced the root .dockerignore, which leaves out k8s/."""
    listing = engine(
        "run", "--rm", "--entrypoint=python", lab_image, "-c",
        "import os; print('\\n'.join(sorted("
        "os.path.relpath(os.path.join(d, f), '/lab') for d, _, fs in os.walk('/lab') "
        "if '/.venv' not in d for f in fs)))",
    ).stdout.decode().split()  # fmt: skip
    in_image = {p.removeprefix("k8s/") for p in listing if p.startswith("k8s/")}
    in_repo = {str(p.relative_to(ROOT / "k8s")) for p in (ROOT / "k8s").rglob("*") if p.is_file()}
    assert in_image == in_repo
    assert not [p for p in listing if p.startswith(("tests/", "docs/")) or "/tests/" in p]
