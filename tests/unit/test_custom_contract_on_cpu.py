"""The seed-003 custom-loss contract: ``GlobalBatchInfo``, ``load_custom_loss`` and the five example losses."""

import importlib.util
import math
from pathlib import Path
from types import ModuleType

import pytest
import torch
from hydra import compose, initialize_config_module
from verl.trainer.ppo.core_algos import POLICY_LOSS_REGISTRY, agg_loss
from verl.utils.config import omega_conf_to_dataclass

from hpt.trainer.custom_contract import AGGREGATION_KEYS, HYBRID_KEYS, GlobalBatchInfo, load_custom_loss

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "custom_losses"
EXAMPLE_NAMES = ("static_weighting", "curriculum", "adaptive", "importance_weighted_sft", "per_question_switch")
LN2 = math.log(2.0)

# One micro-batch of 6 rows x 3 tokens:
#   rows 0-3: rollouts with 3, 2, 1, 2 tokens (8 rollout tokens) and advantages +1, -0.5, -0.5, 0
#   rows 4-5: demonstrations with 2 and 3 tokens (5 demonstration tokens) and probabilities
#             [0.5, 0.25] and [0.5, 0.5, 0.25]: their NLL sum is 3 ln 2 + 2 ln 4 = 7 ln 2
RESPONSE_MASK = torch.tensor([[1, 1, 1], [1, 1, 0], [1, 0, 0], [1, 1, 0], [0, 0, 0], [0, 0, 0]], dtype=torch.bool)
SFT_MASK = torch.tensor([[0, 0, 0], [0, 0, 0], [0, 0, 0], [0, 0, 0], [1, 1, 0], [1, 1, 1]], dtype=torch.float32)
ROW_ADVANTAGES = torch.tensor([1.0, -0.5, -0.5, 0.0, 0.0, 0.0])
DEMO_PROBS = torch.tensor([[0.5, 0.25, 1.0], [0.5, 0.5, 0.25]])
# hand-computed terms at ratio 1: PPO = -mean(A) over the 8 rollout tokens = -(3 - 1 - 0.5) / 8
SFT_NLL = 7 * LN2 / 5
RL_AT_RATIO_ONE = -0.1875


@pytest.fixture(autouse=True)
def _restore_custom_registration():
    """Every example registers "custom" in verl's global registry: put back whatever was there."""
    before = POLICY_LOSS_REGISTRY.get("custom")
    yield
    if before is None:
        POLICY_LOSS_REGISTRY.pop("custom", None)
    else:
        POLICY_LOSS_REGISTRY["custom"] = before


def _load_example(name: str) -> ModuleType:
    """A fresh module object per call, so one example's constants never leak into another test."""
    spec = importlib.util.spec_from_file_location(f"custom_loss_example_{name}", EXAMPLES / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _actor_config(*overrides: str):
    """A real ``HPTActorConfig`` in custom mode: its ``global_batch_info`` is a ``GlobalBatchInfo``."""
    with initialize_config_module("hpt.config", version_base=None):
        cfg = compose(
            "hpt_trainer",
            overrides=[
                "actor_rollout_ref.actor.ppo_mini_batch_size=2",
                "actor_rollout_ref.actor.ppo_micro_batch_size_per_gpu=2",
                "actor_rollout_ref.actor.policy_loss.loss_mode=custom",
                f"actor_rollout_ref.actor.custom_loss_path={EXAMPLES / 'static_weighting.py'}",
                *overrides,
            ],
        )
    return omega_conf_to_dataclass(cfg.actor_rollout_ref.actor)


@pytest.fixture(scope="module")
def actor_config():
    config = _actor_config()
    assert isinstance(config.global_batch_info, GlobalBatchInfo)
    return config


def _inputs(config, *, rollout_log_ratio: float = 0.0, global_demo_tokens: int = 5, global_step: int = 1,
            total_steps: int = 1, row_advantages: torch.Tensor = ROW_ADVANTAGES):
    """The arguments hpt passes for the micro-batch above, with ``global_batch_info`` filled the way hpt does.

    ``sft_log_prob`` is the same tensor as ``log_prob``; ``sft_loss`` is ``dp_size / N`` times the local
    NLL sum, ``N = global_demo_tokens`` (more than 5 stands for demonstrations in other micro-batches).
    """
    old_log_prob = torch.full((6, 3), math.log(0.5))
    log_prob = old_log_prob + rollout_log_ratio * RESPONSE_MASK
    log_prob[4:] = torch.log(DEMO_PROBS)
    log_prob.requires_grad_()
    sft_loss = -(log_prob * SFT_MASK).sum() / global_demo_tokens
    config.global_batch_info.update(
        dp_size=1, batch_num_tokens=int(RESPONSE_MASK.sum()), global_batch_size=4, loss_scale_factor=None,
        sft_loss=sft_loss, sft_log_prob=log_prob, sft_labels_mask=SFT_MASK, global_step=global_step,
        total_steps=total_steps,
    )
    advantages = row_advantages[:, None].expand(6, 3) * RESPONSE_MASK
    return dict(old_log_prob=old_log_prob, log_prob=log_prob, advantages=advantages, response_mask=RESPONSE_MASK,
                loss_agg_mode="token-mean", config=config, rollout_is_weights=None)


# --- GlobalBatchInfo ---------------------------------------------------------------------------------------------

def _info() -> GlobalBatchInfo:
    return GlobalBatchInfo(
        dp_size=1, batch_num_tokens=4, global_batch_size=2, loss_scale_factor=None,
        sft_loss=torch.tensor(0.5), sft_log_prob=torch.zeros(2, 3), sft_labels_mask=torch.ones(2, 3),
        global_step=3, total_steps=10,
    )


def test_keyword_unpacking_passes_only_the_aggregation_keys_to_agg_loss():
    loss_mat = torch.tensor([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]])
    mask = torch.tensor([[1, 1, 0], [1, 0, 0]])
    # token-mean over the global count 4 (not the local 3): (1 + 2 + 4) / 4
    assert agg_loss(loss_mat, mask, "token-mean", **_info()).item() == pytest.approx(1.75)
    with pytest.raises(TypeError):
        agg_loss(loss_mat, mask, "token-mean", **dict(_info().items()))


def test_item_access_get_and_in_see_the_hybrid_keys():
    info = _info()
    assert sorted(info.keys()) == sorted(AGGREGATION_KEYS)
    assert sorted(info) == sorted(AGGREGATION_KEYS)
    assert info["global_step"] == 3
    assert info.get("total_steps") == 10
    assert info.get("missing", "default") == "default"
    assert all(key in info for key in HYBRID_KEYS)
    assert info["sft_loss"].item() == 0.5


def test_hybrid_items_holds_exactly_the_hybrid_keys_present():
    assert list(_info().hybrid_items()) == list(HYBRID_KEYS)
    assert GlobalBatchInfo(dp_size=1, global_step=2).hybrid_items() == {"global_step": 2}


# --- load_custom_loss --------------------------------------------------------------------------------------------

def test_missing_loss_file_names_the_config_key(tmp_path):
    with pytest.raises(FileNotFoundError, match="custom_loss_path"):
        load_custom_loss(str(tmp_path / "nowhere.py"))


def test_file_that_registers_nothing_is_rejected(tmp_path, monkeypatch):
    monkeypatch.delitem(POLICY_LOSS_REGISTRY, "custom", raising=False)
    path = tmp_path / "not_a_loss.py"
    path.write_text("VALUE = 1\n")
    with pytest.raises(ValueError, match='register_policy_loss\\("custom"\\)'):
        load_custom_loss(str(path))


def test_loss_file_is_imported_once_per_path(tmp_path):
    path = tmp_path / "loss.py"
    path.write_text((EXAMPLES / "static_weighting.py").read_text())
    load_custom_loss(str(path))
    assert POLICY_LOSS_REGISTRY["custom"].__module__.startswith("hpt_custom_loss_")
    sentinel = object()
    POLICY_LOSS_REGISTRY["custom"] = sentinel
    load_custom_loss(str(path))  # cached: the file is not executed again
    assert POLICY_LOSS_REGISTRY["custom"] is sentinel


# --- the five examples -------------------------------------------------------------------------------------------

@pytest.mark.parametrize("name", EXAMPLE_NAMES)
def test_example_registers_itself_and_reports_the_common_metrics(name, actor_config):
    module = _load_example(name)
    assert POLICY_LOSS_REGISTRY["custom"] is module.compute_custom_policy_loss
    loss, metrics = module.compute_custom_policy_loss(**_inputs(actor_config))
    assert loss.dim() == 0 and torch.isfinite(loss)
    assert {"sft_weight", "rl_weight", "sft_loss", "rl_loss"} <= metrics.keys()
    assert all(isinstance(value, float) for value in metrics.values())
    loss.backward()  # the loss always carries the graph of the micro-batch's log-probs


def test_static_weighting_at_ratio_one(actor_config):
    module = _load_example("static_weighting")
    loss, metrics = module.compute_custom_policy_loss(**_inputs(actor_config))
    assert module.ALPHA == 0.5
    assert loss.item() == pytest.approx(0.5 * SFT_NLL + 0.5 * RL_AT_RATIO_ONE, abs=1e-6)
    assert metrics["sft_loss"] == pytest.approx(SFT_NLL, abs=1e-6)
    assert metrics["rl_loss"] == pytest.approx(RL_AT_RATIO_ONE, abs=1e-6)
    assert (metrics["sft_weight"], metrics["rl_weight"]) == (0.5, 0.5)


def test_static_weighting_clips_the_ratio(actor_config):
    # ratio 1.5 with clip_ratio 0.2: A=+1 tokens are clipped to 1.2 (-1.2 each, 3 tokens); A=-0.5 tokens keep
    # the pessimistic unclipped 0.75 (3 tokens); the A=0 row adds 0 -> (-3.6 + 2.25) / 8
    module = _load_example("static_weighting")
    assert actor_config.clip_ratio == 0.2
    loss, metrics = module.compute_custom_policy_loss(**_inputs(actor_config, rollout_log_ratio=math.log(1.5)))
    assert metrics["rl_loss"] == pytest.approx(-0.16875, abs=1e-6)
    assert metrics["pg_clipfrac"] == pytest.approx(3 / 8, abs=1e-6)
    assert loss.item() == pytest.approx(0.5 * SFT_NLL + 0.5 * -0.16875, abs=1e-6)


@pytest.mark.parametrize(("schedule", "sft_weight"), [("linear", 0.75), ("cosine", 0.5 * (1 + math.cos(math.pi / 4)))])
def test_curriculum_weight_at_a_quarter_of_training(actor_config, schedule, sft_weight):
    module = _load_example("curriculum")
    module.SCHEDULE = schedule
    # step 2 of 5 (1-indexed): progress (2 - 1) / (5 - 1) = 0.25
    loss, metrics = module.compute_custom_policy_loss(**_inputs(actor_config, global_step=2, total_steps=5))
    assert metrics["progress"] == 0.25
    assert metrics["sft_weight"] == pytest.approx(sft_weight)
    assert metrics["rl_weight"] == pytest.approx(1 - sft_weight)
    assert loss.item() == pytest.approx(sft_weight * SFT_NLL + (1 - sft_weight) * RL_AT_RATIO_ONE, abs=1e-6)


def test_curriculum_ends_at_the_end_weight(actor_config):
    module = _load_example("curriculum")
    _, first = module.compute_custom_policy_loss(**_inputs(actor_config, global_step=1, total_steps=5))
    _, last = module.compute_custom_policy_loss(**_inputs(actor_config, global_step=5, total_steps=5))
    assert (first["sft_weight"], last["sft_weight"]) == (module.SFT_WEIGHT_START, module.SFT_WEIGHT_END)


def test_adaptive_weight_from_the_positive_advantage_share(actor_config):
    # 1 of the 4 rollout rows has A > 0 -> success proxy 0.25; SFT weight 1 - 0.25 / 0.5 = 0.5
    module = _load_example("adaptive")
    loss, metrics = module.compute_custom_policy_loss(**_inputs(actor_config))
    assert metrics["success_rate_proxy"] == 0.25
    assert metrics["rollout_sequences"] == 4.0
    assert (metrics["sft_weight"], metrics["rl_weight"]) == (0.5, 0.5)
    assert loss.item() == pytest.approx(0.5 * SFT_NLL + 0.5 * RL_AT_RATIO_ONE, abs=1e-6)


def test_adaptive_is_pure_rl_at_saturation(actor_config):
    module = _load_example("adaptive")
    advantages = torch.tensor([1.0, 1.0, -0.5, -0.5, 0.0, 0.0])  # 2 of 4 positive = SATURATION
    loss, metrics = module.compute_custom_policy_loss(**_inputs(actor_config, row_advantages=advantages))
    assert metrics["sft_weight"] == 0.0
    # -(3 + 2 - 0.5 - 1) / 8
    assert loss.item() == pytest.approx(-3.5 / 8, abs=1e-6)


def test_importance_weights_shape_and_clip():
    module = _load_example("importance_weighted_sft")
    weights = module.importance_weights(torch.log(torch.tensor([1.0, 0.5, 0.25, 0.001])))
    # 1.1 p / (p + 0.1): 1 at p=1, 0.55/0.6, 0.275/0.35; 0.0011/0.101 ~ 0.011 is floored at 0.1
    assert weights.tolist() == pytest.approx([1.0, 0.55 / 0.6, 0.275 / 0.35, 0.1])


def test_importance_weighted_sft_uses_the_global_token_count(actor_config):
    # 10 demonstration tokens in the mini-batch, 5 here: sum(w * nll) / 10 with w(0.5) = 11/12, w(0.25) = 11/14
    module = _load_example("importance_weighted_sft")
    inputs = _inputs(actor_config, global_demo_tokens=10)
    loss, metrics = module.compute_custom_policy_loss(**inputs)
    weighted_nll = 3 * (11 / 12) * LN2 + 2 * (11 / 14) * 2 * LN2
    assert metrics["sft_loss"] == pytest.approx(weighted_nll / 10, abs=1e-6)
    assert metrics["sft_nll"] == pytest.approx(7 * LN2 / 10, abs=1e-6)
    assert metrics["sft_is_weight_mean"] == pytest.approx((3 * 11 / 12 + 2 * 11 / 14) / 5, abs=1e-6)
    assert loss.item() == pytest.approx(weighted_nll / 10 + RL_AT_RATIO_ONE, abs=1e-6)

    # the weight is detached: d loss / d log p of a demonstration token is -w / N
    (grad,) = torch.autograd.grad(loss, inputs["log_prob"])
    assert grad[5].tolist() == pytest.approx([-(11 / 12) / 10, -(11 / 12) / 10, -(11 / 14) / 10], abs=1e-6)
    assert grad[4, 2].item() == 0.0


def test_importance_weighted_sft_refuses_other_sft_settings():
    module = _load_example("importance_weighted_sft")
    config = _actor_config("actor_rollout_ref.actor.offline_loss_type=phi_nll")
    with pytest.raises(ValueError, match="offline_loss_type=nll"):
        module.compute_custom_policy_loss(**_inputs(config))


def test_per_question_switch_goes_to_rl_when_some_rollout_succeeds(actor_config):
    module = _load_example("per_question_switch")
    loss, metrics = module.compute_custom_policy_loss(**_inputs(actor_config))
    assert (metrics["sft_weight"], metrics["rl_weight"]) == (0.0, 1.0)
    assert loss.item() == pytest.approx(RL_AT_RATIO_ONE, abs=1e-6)


def test_per_question_switch_goes_to_sft_when_no_rollout_succeeds(actor_config):
    module = _load_example("per_question_switch")
    advantages = torch.tensor([-1.0, -0.5, -0.5, 0.0, 0.0, 0.0])
    inputs = _inputs(actor_config, row_advantages=advantages)
    loss, metrics = module.compute_custom_policy_loss(**inputs)
    assert (metrics["sft_weight"], metrics["rl_weight"]) == (1.0, 0.0)
    assert metrics["success_rate_proxy"] == 0.0
    assert metrics["rl_loss"] == pytest.approx(4.5 / 8, abs=1e-6)  # computed, but weighted 0
    assert loss.item() == pytest.approx(SFT_NLL, abs=1e-6)
    (grad,) = torch.autograd.grad(loss, inputs["log_prob"])
    assert torch.all(grad[:4] == 0)  # pure SFT: no gradient on rollout tokens
