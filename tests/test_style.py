"""The code base stays clean: ruff and mypy for Python, hadolint for the Dockerfiles."""

import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def run(*args):
    return subprocess.run(args, cwd=ROOT, capture_output=True, text=True, timeout=120)


def test_ruff_check_is_clean(tool):
    result = run(tool("ruff"), "check", "--output-format", "concise", ".")
    assert result.returncode == 0, result.stdout + result.stderr


def test_ruff_format_is_clean(tool):
    result = run(tool("ruff"), "format", "--check", ".")
    assert result.returncode == 0, result.stdout + result.stderr


def test_mypy_finds_no_type_errors(tool):
    result = run(tool("mypy"), "--cache-dir", "/dev/null")
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("service", ["server", "client"])
def test_hadolint_is_clean(tool, service):
    result = run(tool("hadolint"), f"services/{service}/Dockerfile")
    assert result.returncode == 0, result.stdout + result.stderr
