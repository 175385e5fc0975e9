"""exp_scripts/setup_cpu.sh installs torch first, from the index HPT_TORCH_INDEX_URL names (pip is a stand-in)."""

import os
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _pip_calls(tmp_path: Path, **env: str) -> list[str]:
    venv = tmp_path / "venv"
    (venv / "bin").mkdir(parents=True)
    log = tmp_path / "calls.log"
    python = venv / "bin" / "python"
    python.write_text(f'#!/usr/bin/env bash\necho "$*" >> {log}\n')  # records every `python -m pip ...`
    python.chmod(0o755)
    (venv / "bin" / "activate").write_text(f'export PATH="{venv / "bin"}:$PATH"\n')
    base = {key: os.environ[key] for key in ("PATH", "HOME") if key in os.environ}
    subprocess.run(["bash", "-c", f". {ROOT / 'exp_scripts' / 'setup_cpu.sh'}"], check=True,
                   env={**base, "HPT_VENV": str(venv), **env}, capture_output=True, text=True)
    return log.read_text().splitlines()


def _torch_install(calls: list[str]) -> str:
    return next(call for call in calls if call.endswith("torch==2.13.0"))


def test_torch_comes_from_the_cpu_index_when_asked(tmp_path):
    calls = _pip_calls(tmp_path, HPT_TORCH_INDEX_URL="https://download.pytorch.org/whl/cpu")
    assert "--index-url https://download.pytorch.org/whl/cpu" in _torch_install(calls)
    assert calls.index(_torch_install(calls)) < next(i for i, c in enumerate(calls) if "-e " in c)  # torch first
    assert all("--index-url" not in call for call in calls if "-e " in call)  # hpt and verl: the usual index


@pytest.mark.parametrize("value", [None, ""])
def test_without_the_variable_pip_uses_its_configured_index(tmp_path, value):
    calls = _pip_calls(tmp_path, **({} if value is None else {"HPT_TORCH_INDEX_URL": value}))
    assert "--index-url" not in _torch_install(calls)
