"""Bad configurations stop at start-up with a message that says what to do (before Ray starts)."""

import os

import pytest
import torch
from hydra import compose, initialize_config_module

from hpt.config import resolvers
from hpt.main import CPU_OVERLAY, ConfigError, _check_micro_batches, run, select_platform_before_hydra


def _config(name: str, *overrides: str):
    resolvers.register()
    with initialize_config_module("hpt.config", version_base=None):
        return compose(name, overrides=list(overrides))


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without a GPU")
def test_gpu_config_without_gpu_names_the_cpu_overlay():
    with pytest.raises(ConfigError, match=CPU_OVERLAY):
        run(_config("hpt_trainer"))


def test_unknown_strategy_lists_the_valid_ones():
    with pytest.raises(ConfigError) as excinfo:
        run(_config(CPU_OVERLAY, "trainer.unify_strategy=balance"))
    assert "switch" in str(excinfo.value) and "no" in str(excinfo.value)


def test_disabled_balance_hook_is_refused():
    with pytest.raises(ConfigError, match="balance_batch"):
        run(_config(CPU_OVERLAY, "trainer.balance_batch=false"))


def test_v1_trainer_is_refused():
    with pytest.raises(ConfigError, match="use_v1"):
        run(_config(CPU_OVERLAY, "trainer.use_v1=true"))


def test_both_configs_accept_the_documented_overrides():
    for name in ("hpt_trainer", CPU_OVERLAY):
        cfg = _config(name, "trainer.unify_strategy=no", "trainer.switch_gate=0", "algorithm.adv_estimator=grpo",
                      "actor_rollout_ref.actor.sft_loss_coef=0.5")
        assert cfg.trainer.unify_strategy == "no"
        assert cfg.actor_rollout_ref.actor.sft_loss_coef == 0.5


@pytest.mark.parametrize(
    ("override", "expected"),
    [
        ("trainer.unify_strategy=nope", "luffy"),  # lists the registered gates
        ("trainer.lambda_schedule.name=nope", "warmup_cosine"),
        ("actor_rollout_ref.actor.offline_loss_type=nope", "phi_nll"),
        ("actor_rollout_ref.actor.off_policy_loss_type=nope", "clipped_old_ratio"),
        ("actor_rollout_ref.actor.off_policy_reshape=p_div_q", "p_div_p_"),
        ("actor_rollout_ref.actor.sft_loss_coef=-1", "sft_loss_coef"),
        ("trainer.switch_gate_off=-1", "switch_gate_off"),
        ("trainer.sft_warmup_steps=-1", "sft_warmup_steps"),
        # 16 prompts x n=4 = 64 rows per mini-batch: 24-row micro-batches cannot split it
        ("actor_rollout_ref.actor.ppo_micro_batch_size_per_gpu=24", "ppo_micro_batch_size_per_gpu=24 does not divide"),
        ("trainer.soft_table=[[1,0,0]]", "ignores trainer.soft_type / soft_table"),  # strategy is switch
        ("trainer.lambda_schedule.warmup=1.5", "warmup"),
        ("actor_rollout_ref.actor.policy_loss.loss_mode=custom", "custom_loss_path"),
        ("actor_rollout_ref.actor.offline_loss_type=entropy_weighted_nll", "calculate_entropy"),
        ("actor_rollout_ref.actor.offline_loss_type=srft", "renamed 'entropy_weighted_nll'"),
        ("actor_rollout_ref.actor.offline_loss_type=shaped", "advantage 0, so it would train nothing"),
        ("actor_rollout_ref.actor.loss_normalization=per_token", "valid: global, original"),
        ("trainer.chord.mu_peak=1.5", "mu_peak must be in"),
        ("trainer.chord.mu_peak=0.9", "ignores trainer.chord"),
        ("trainer.unify_strategy=srft", "calculate_entropy=true"),
    ],
)
def test_bad_hybrid_settings_fail_before_any_compute(override, expected):
    with pytest.raises(ConfigError, match=expected):
        run(_config(CPU_OVERLAY, override))


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        (("trainer.unify_strategy=soft", "trainer.soft_table=[[1,0,0]]"), "5 rows"),  # the CPU overlay samples n=4
        (("trainer.unify_strategy=no", "trainer.switch_gate_off=2"), "ignores trainer.switch_gate_off"),
        (("trainer.unify_strategy=chord", "actor_rollout_ref.actor.offline_loss_type=phi_nll"),
         "enable_phi_function=true"),
        (("trainer.unify_strategy=srft", "actor_rollout_ref.actor.calculate_entropy=true",
          "actor_rollout_ref.actor.policy_loss.loss_mode=custom",
          "actor_rollout_ref.actor.custom_loss_path=examples/custom_losses/static_weighting.py"),
         "custom would be ignored"),
        (("actor_rollout_ref.actor.loss_normalization=original", "actor_rollout_ref.actor.loss_agg_mode=token-sum"),
         "loss_agg_mode must be one of"),
        (("actor_rollout_ref.actor.loss_normalization=original",
          "actor_rollout_ref.actor.loss_agg_mode=seq-mean-token-sum-norm"),
         "set actor_rollout_ref.actor.loss_scale_factor"),
        (("algorithm.rollout_correction.rollout_rs=token_k1",), "rollout_correction.rollout_rs would act on"),
        (("algorithm.rollout_correction.bypass_mode=true",), "bypass_mode would act on demonstration rows"),
        (("trainer.unify_strategy=no", "trainer.sft_warmup_steps=2", "algorithm.rollout_correction.rollout_is=token"),
         "rollout_correction.rollout_is would act on"),
    ],
)
def test_settings_that_train_nothing_or_ignore_a_key_fail_with_the_fix(overrides, expected):
    with pytest.raises(ConfigError, match=expected):
        run(_config(CPU_OVERLAY, *overrides))


def _mini4(*overrides: str):
    """The CPU overlay with PPO mini-batches of 4 prompts: the geometry the row counts below are written for."""
    return _config(CPU_OVERLAY, "actor_rollout_ref.actor.ppo_mini_batch_size=4", *overrides)


def test_micro_batches_must_divide_the_rows_they_split():
    n2 = "actor_rollout_ref.rollout.n=2"
    _check_micro_batches(_mini4(n2, "actor_rollout_ref.actor.ppo_micro_batch_size_per_gpu=8",
                                 "actor_rollout_ref.rollout.log_prob_micro_batch_size_per_gpu=4"))
    # a hybrid gate can shrink a step to one 8-row mini-batch: 16-row log-prob micro-batches may not split it
    with pytest.raises(ConfigError, match="rollout.log_prob_micro_batch_size_per_gpu=16 does not divide the 8 rows"):
        _check_micro_batches(_mini4(n2, "actor_rollout_ref.actor.ppo_micro_batch_size_per_gpu=8"))
    # plain GRPO keeps every step at 16 prompts x 2 = 32 rows, which 16-row log-prob micro-batches split
    _check_micro_batches(_mini4(n2, "actor_rollout_ref.actor.ppo_micro_batch_size_per_gpu=8",
                                 "trainer.unify_strategy=no"))
    with pytest.raises(ConfigError, match="the 8 rows of a PPO mini-batch"):  # ... but an SFT warm-up resizes it
        _check_micro_batches(_mini4(n2, "actor_rollout_ref.actor.ppo_micro_batch_size_per_gpu=8",
                                     "trainer.unify_strategy=no", "trainer.sft_warmup_steps=1"))
    # token-budget micro-batches split any batch: nothing to check
    _check_micro_batches(_mini4(n2, "actor_rollout_ref.actor.use_dynamic_bsz=true",
                                 "actor_rollout_ref.rollout.log_prob_use_dynamic_bsz=true"))
    # two ranks halve the rows each rank splits: 4 prompts x 4 / 2 = 8
    with pytest.raises(ConfigError, match="does not divide the 8 rows"):
        _check_micro_batches(_mini4("trainer.n_gpus_per_node=2"))
    # ... and sequence parallelism groups ranks: 2 GPUs, SP 2 = one data-parallel rank with all 16 rows
    _check_micro_batches(_mini4("trainer.n_gpus_per_node=2",
                                 "actor_rollout_ref.actor.fsdp_config.ulysses_sequence_parallel_size=2"))
    with pytest.raises(ConfigError, match="does not split over 3"):
        _check_micro_batches(_mini4("trainer.n_gpus_per_node=3"))
    with pytest.raises(ConfigError, match="ref.log_prob_micro_batch_size_per_gpu=16"):  # the reference, with KL
        _check_micro_batches(_mini4(n2, "actor_rollout_ref.actor.ppo_micro_batch_size_per_gpu=8",
                                     "actor_rollout_ref.rollout.log_prob_micro_batch_size_per_gpu=8",
                                     "actor_rollout_ref.actor.use_kl_loss=true"))


def test_custom_loss_file_must_exist():
    with pytest.raises(ConfigError, match="does not exist"):
        run(_config(CPU_OVERLAY, "actor_rollout_ref.actor.policy_loss.loss_mode=custom",
                    "actor_rollout_ref.actor.custom_loss_path=/nonexistent/loss.py"))


def test_machine_without_gpu_selects_the_cpu_platform_before_hydra(monkeypatch):
    monkeypatch.delenv("VERL_PLATFORM", raising=False)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    select_platform_before_hydra()
    assert os.environ["VERL_PLATFORM"] == "cpu"


def test_platform_chosen_by_the_user_is_kept(monkeypatch):
    monkeypatch.setenv("VERL_PLATFORM", "cuda")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    select_platform_before_hydra()
    assert os.environ["VERL_PLATFORM"] == "cuda"


@pytest.mark.parametrize("strategy", ["chord", "srft"])
def test_chord_and_srft_without_demonstrations_name_the_missing_data_key(tmp_path, strategy):
    import pyarrow as pa
    import pyarrow.parquet as pq

    path = tmp_path / "no_demos.parquet"
    pq.write_table(pa.table({"data_source": ["hpt/arithmetic"], "extra_info": [{"index": 0}]}), path)
    overrides = [f"trainer.unify_strategy={strategy}", f"data.train_files={path}"]
    if strategy == "srft":
        overrides.append("actor_rollout_ref.actor.calculate_entropy=true")
    with pytest.raises(ConfigError, match=r"has no extra_info\.target column"):
        run(_config(CPU_OVERLAY, *overrides))


def test_rollout_correction_is_left_to_verl_when_no_demonstration_row_is_trained():
    from hpt.config.method_checks import check_method_settings

    config = _config(CPU_OVERLAY, "trainer.unify_strategy=no", "algorithm.rollout_correction.rollout_is=token")
    check_method_settings(config, "no")  # GRPO alone: every row was sampled, verl's correction applies as is
    with pytest.raises(ValueError, match="rollout_is would act on demonstration rows"):
        check_method_settings(config, "switch")
