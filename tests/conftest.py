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


@pytest.fixture
def one_torch_thread():
    """The tiny models' matrices are too small to share: extra threads only wait on busy cores."""
    import torch

    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)
