"""Test-session set-up: every test runs verl on the CPU platform, offline, without W&B."""

import os

# Before anything imports verl: verl caches the platform at import time.
os.environ.setdefault("VERL_PLATFORM", "cpu")
os.environ.setdefault("WANDB_MODE", "disabled")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
