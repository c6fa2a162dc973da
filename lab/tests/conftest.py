"""Shared helpers for the lab's tests."""

from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def k8s_dir() -> Path:
    return REPO / "k8s"
