"""Test-session set-up: every test runs verl on the CPU platform, offline, without W&B."""

import os
import pytest

# Before anything imports verl: verl caches the platform at import time.
os.environ.setdefault("VERL_PLATFORM", "cpu")
os.environ.setdefault("WANDB_MODE", "disabled")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


@pytest.fixture(scope="session")
def vlm_dir(tmp_path_factory):
    """The tiny Qwen2.5-VL and the visual task (hpt.toy.build_vlm), built once per session."""
    from hpt.toy.build_vlm import main as build_vlm

    out = tmp_path_factory.mktemp("tiny_vlm")
    build_vlm(["--out", str(out), "--train-size", "16", "--test-size", "8"])
    return out
