"""Verifiers by data_source: the dispatcher verl calls, registration, and the start-up data_source check."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hydra import compose, initialize_config_module
from omegaconf import OmegaConf

from hpt.config import resolvers
from hpt.main import CPU_OVERLAY, ConfigError, run
from hpt.rewards import registry
from hpt.rewards.registry import compute_score, has_verifier, known_data_sources, register_verifier
from hpt.rewards.startup import check_data_sources, uses_hpt_dispatcher

DISPATCH_FILE = Path(registry.__file__).with_name("dispatch.py")
MATH_SOURCES = ["openai/gsm8k", "HuggingFaceH4/MATH-500", "aime2024", "zwhe99/DeepMath-103K", "meta-math/MetaMathQA",
                "open-r1/OpenR1-Math-220k"]


@pytest.fixture
def clean_registry(monkeypatch: pytest.MonkeyPatch) -> None:
    """Registrations made by a test disappear after it."""
    monkeypatch.setattr(registry, "_exact", dict(registry._exact))
    monkeypatch.setattr(registry, "_prefixes", dict(registry._prefixes))


@pytest.mark.parametrize("source", [*MATH_SOURCES, "hpt/arithmetic", "math", "math_dapo", "MATH/algebra", "aime2025"])
def test_known_sources_have_verifiers(source: str) -> None:
    assert has_verifier(source)


@pytest.mark.parametrize("source", ["mathematics", "openai/gsm8k-variant", "code/apps", ""])
def test_other_sources_do_not(source: str) -> None:
    assert not has_verifier(source)


def test_unknown_source_raises_listing_the_known_ones() -> None:
    with pytest.raises(ValueError, match="no verifier for data_source 'code/apps'") as excinfo:
        compute_score("code/apps", "\\boxed{1}", "1")
    for source in ["openai/gsm8k", "hpt/arithmetic", "math*"]:
        assert source in str(excinfo.value)


@pytest.mark.parametrize("source", MATH_SOURCES)
def test_math_sources_score_boxed_answers(source: str) -> None:
    assert compute_score(source, "... so \\boxed{\\frac{1}{2}}", "0.5") == {"score": 1.0, "acc": 1.0,
                                                                         "pred": "\\frac{1}{2}", "reason": ""}


def test_every_source_returns_the_same_keys() -> None:
    """verl reads the extra-info keys from a batch's first row and indexes every row with them."""
    arithmetic = compute_score("hpt/arithmetic", "1+2=3#3", "3")
    assert arithmetic == {"score": 1.0, "acc": 1.0, "pred": "3", "reason": ""}
    assert compute_score("hpt/arithmetic", "1+2=3", "3") == {"score": 0.0, "acc": 0.0, "pred": "", "reason": ""}
    assert set(compute_score("openai/gsm8k", "#### 3", "3")) == set(arithmetic)


def test_unset_options_keep_the_verifiers_defaults() -> None:
    result = compute_score("openai/gsm8k", "#### 3", "3", None, answer_format=None, timeout_s=None, format_score=None)
    assert result["acc"] == 1.0


def test_registering_a_verifier(clean_registry) -> None:
    register_verifier("my/task", lambda data_source, solution_str, ground_truth, extra_info=None, **kw: 0.25)
    assert has_verifier("my/task") and "my/task" in known_data_sources()
    assert compute_score("my/task", "x", "y") == {"score": 0.25, "acc": 0.25, "pred": "", "reason": ""}
    with pytest.raises(ValueError, match="already registered"):
        register_verifier("my/task", lambda *a, **k: 1.0)
    register_verifier("my/task", lambda *a, **k: {"score": 1.0, "acc": True, "pred": 7, "extra": 1}, replace=True)
    assert compute_score("my/task", "x", "y") == {"score": 1.0, "acc": 1.0, "pred": "7", "reason": ""}


def test_prefix_rules(clean_registry) -> None:
    register_verifier("code", lambda *a, **k: 1.0, prefix=True)
    assert has_verifier("code/apps") and has_verifier("CODE") and not has_verifier("codeforces")
    assert "code*" in known_data_sources()


def test_verl_loads_the_dispatcher_file_and_passes_reward_kwargs() -> None:
    """verl 0.9.1's loader: the file at reward.custom_reward_function.path, reward_kwargs merged into each call."""
    from verl.trainer.ppo.reward import get_custom_reward_fn

    config = OmegaConf.create({"reward": {"custom_reward_function": {
        "path": str(DISPATCH_FILE), "name": "compute_score", "reward_kwargs": {"format_score": 0.5}}}})
    fn = get_custom_reward_fn(config)
    call = {"data_source": "openai/gsm8k", "ground_truth": "42", "extra_info": {"index": 3}}
    assert fn(solution_str="\\boxed{41}", **call) == {"score": 0.5, "acc": 0.0, "pred": "41", "reason": ""}
    assert fn(solution_str="\\boxed{42}", **call)["score"] == 1.0


def test_verl_validation_metrics_accept_the_result() -> None:
    """acc becomes the core metric and the string pred drives majority voting (maj@N)."""
    from verl.trainer.ppo.metric_utils import process_validation_metrics

    responses = ["\\boxed{42}", "\\boxed{41}", "\\boxed{42}", "no answer"]
    results = [compute_score("openai/gsm8k", r, "42") for r in responses]
    infos = {key: [r[key] for r in results] for key in ("score", "acc", "pred", "reason")}
    metrics = process_validation_metrics(["openai/gsm8k"] * 4, ["u0"] * 4, infos)["openai/gsm8k"]
    assert metrics["acc"]["mean@4"] == 0.5
    assert "maj@4/mean" in metrics["acc"] and "pred" not in metrics and "reason" not in metrics


# --- start-up check -------------------------------------------------------------------------------


def _config(name: str, *overrides: str):
    resolvers.register()
    with initialize_config_module("hpt.config", version_base=None):
        return compose(name, overrides=list(overrides))


def _parquet(path: Path, sources: list[str]) -> str:
    pq.write_table(pa.table({"data_source": sources, "prompt": ["q"] * len(sources)}), path)
    return str(path)


def test_gpu_config_uses_the_dispatcher_and_cpu_overlay_its_arithmetic_reward() -> None:
    gpu = _config("hpt_trainer")
    assert Path(OmegaConf.to_container(gpu.reward, resolve=True)["custom_reward_function"]["path"]) == DISPATCH_FILE
    assert uses_hpt_dispatcher(OmegaConf.create(OmegaConf.to_container(gpu, resolve=True)))
    assert not uses_hpt_dispatcher(_config(CPU_OVERLAY))


@pytest.mark.parametrize(
    ("path", "name", "expected"),
    [(str(DISPATCH_FILE), "compute_score", True), (f"file://{DISPATCH_FILE}", "compute_score", True),
     ("pkg://hpt.rewards.dispatch", "compute_score", True), ("pkg://hpt/rewards/registry", "compute_score", True),
     (str(DISPATCH_FILE), "other_fn", False), ("/somewhere/else/dispatch.py", "compute_score", False),
     (None, None, False)],
)
def test_dispatcher_detection(path: str | None, name: str | None, expected: bool) -> None:
    config = OmegaConf.create({"reward": {"custom_reward_function": {"path": path, "name": name}},
                               "custom_reward_function": {"path": None, "name": None}})
    assert uses_hpt_dispatcher(config) is expected


def test_legacy_top_level_reward_block_wins() -> None:
    hpt_block = {"path": str(DISPATCH_FILE), "name": "compute_score"}
    user_block = {"path": "/my/reward.py", "name": "compute_score"}
    config = OmegaConf.create({"reward": {"custom_reward_function": hpt_block}, "custom_reward_function": user_block})
    assert not uses_hpt_dispatcher(config)


def test_unknown_validation_source_stops_start_up(tmp_path: Path) -> None:
    train = _parquet(tmp_path / "train.parquet", ["hpt/arithmetic"] * 3)
    val = _parquet(tmp_path / "val.parquet", ["hpt/arithmetic", "my/unknown", "my/unknown", "openai/gsm8k"])
    config = _config(CPU_OVERLAY, f"reward.custom_reward_function.path={DISPATCH_FILE}",
                     f"data.train_files={train}", f"data.val_files=[{val}]")
    with pytest.raises(ConfigError, match="'my/unknown'") as excinfo:
        run(config)
    message = str(excinfo.value)
    assert "data.val_files" in message and "val.parquet" in message and "openai/gsm8k" in message
    assert "hpt/arithmetic'" not in message.split("known:")[0]  # only the unknown source is reported


def test_known_sources_pass_and_remote_or_missing_files_are_skipped(tmp_path: Path) -> None:
    train = _parquet(tmp_path / "train.parquet", ["zwhe99/DeepMath-103K"])
    val = _parquet(tmp_path / "val.parquet", ["openai/gsm8k", "HuggingFaceH4/MATH-500", "aime2024"])
    config = _config("hpt_trainer", f"data.train_files={train}",
                     f"data.val_files=[{val},hdfs://cluster/val.parquet,{tmp_path / 'missing.parquet'}]")
    check_data_sources(config)


def test_a_user_reward_function_is_not_checked(tmp_path: Path) -> None:
    val = _parquet(tmp_path / "val.parquet", ["my/unknown"])
    config = _config("hpt_trainer", "reward.custom_reward_function.path=/my/reward.py", f"data.val_files={val}",
                     f"data.train_files={val}")
    check_data_sources(config)


def test_file_without_data_source_column_is_reported(tmp_path: Path) -> None:
    path = tmp_path / "val.parquet"
    pq.write_table(pa.table({"prompt": ["q"]}), path)
    config = _config("hpt_trainer", f"data.val_files={path}", f"data.train_files={path}")
    with pytest.raises(ValueError, match="no 'data_source' column"):
        check_data_sources(config)


def test_bad_reward_kwargs_stop_start_up() -> None:
    config = _config(CPU_OVERLAY, f"reward.custom_reward_function.path={DISPATCH_FILE}",
                     "+reward.custom_reward_function.reward_kwargs.answer_format=latex")
    with pytest.raises(ConfigError, match="answer_format"):
        run(config)
