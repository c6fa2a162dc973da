"""Shared helpers for the lab's tests."""

import os
from pathlib import Path

import pytest
from hellolb_lab import overlay

REPO = Path(__file__).resolve().parents[2]

#: Second octet of the loopback blocks the tests run labs on. It differs between test sessions
#: (unless set), so two test runs on one machine do not fight over addresses.
OCTET = int(os.environ.get("HELLOLB_LAB_TEST_OCTET", 100 + os.getpid() % 150))


@pytest.fixture(scope="session")
def k8s_dir() -> Path:
    return REPO / "k8s"


@pytest.fixture(scope="session")
def lab_net():
    """``lab_net(n)`` is the ``127.X.n`` block for one test's lab."""
    return lambda n: f"127.{OCTET}.{n}"


@pytest.fixture(scope="session")
def overlay_of(k8s_dir):
    """A scenario's overlay as the lab and the cluster check read it (rendered once)."""
    rendered: dict[str, overlay.Overlay] = {}

    def load(name: str) -> overlay.Overlay:
        if name not in rendered:
            rendered[name] = overlay.load(name, k8s_dir)
        return rendered[name]

    return load
