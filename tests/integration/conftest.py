"""Shared fixtures: the tiny model and data, built once per test session."""

from pathlib import Path

import pytest

from hpt.data.build_tiny import main as build_tiny


@pytest.fixture(scope="session")
def tiny_dir(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("tiny")
    build_tiny(["--out", str(out), "--train-size", "256", "--test-size", "32"])
    return out
