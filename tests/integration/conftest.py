"""Shared fixtures: the tiny model and data, built once per test session."""

from pathlib import Path

import pytest

from hpt.toy.build_tiny import RECOMMENDED_WARM_START_STEPS
from hpt.toy.build_tiny import main as build_tiny


@pytest.fixture(scope="session")
def tiny_dir(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("tiny")
    build_tiny(["--out", str(out), "--train-size", "256", "--test-size", "32"])
    return out


@pytest.fixture(scope="session")
def warm_tiny_dir(tmp_path_factory) -> Path:
    """Tiny model after a short SFT warm start: it solves some prompts, not all (see hpt.toy.warm_start)."""
    out = tmp_path_factory.mktemp("tiny_warm")
    build_tiny(["--out", str(out), "--test-size", "16", "--warm-start-steps", str(RECOMMENDED_WARM_START_STEPS),
                "--sft-stream-size", "64"])
    return out
