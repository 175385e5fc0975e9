"""The verl compatibility guard: passes on the supported verl, names what a changed verl lacks."""

import pytest

from hpt import compat


def test_installed_verl_has_every_internal_hpt_uses():
    compat.check_verl()


def test_a_missing_internal_fails_naming_the_supported_version_and_the_piece(monkeypatch):
    from verl.trainer.ppo.ray_trainer import RayPPOTrainer

    monkeypatch.delattr(RayPPOTrainer, "_balance_batch")
    with pytest.raises(compat.VerlCompatibilityError) as error:
        compat.check_verl()
    message = str(error.value)
    assert f"verl=={compat.SUPPORTED_VERL}" in message
    assert "verl.trainer.ppo.ray_trainer.RayPPOTrainer._balance_batch is missing" in message
    assert "agg_loss" not in message  # only the broken piece is reported


def test_a_changed_signature_fails_naming_the_parameter(monkeypatch):
    import verl.trainer.ppo.core_algos as core_algos

    def agg_loss(loss_mat, loss_mask, loss_agg_mode, dp_size=1, batch_num_tokens=None, loss_scale_factor=None):
        return loss_mat

    monkeypatch.setattr(core_algos, "agg_loss", agg_loss)
    with pytest.raises(compat.VerlCompatibilityError, match="core_algos.agg_loss no longer accepts global_batch_size"):
        compat.check_verl()


def test_a_missing_module_and_a_behaviour_change_are_both_reported():
    missing = compat.Requirement("verl.no_such_module", "thing", "test")
    changed = compat.Requirement("verl.workers.engine.base", "EngineRegistry.get_engine_cls", "test",
                                 mentions="NO_SUCH_ENV_VAR")
    with pytest.raises(compat.VerlCompatibilityError) as error:
        compat.check_verl((missing, changed))
    assert "verl.no_such_module.thing is missing" in str(error.value)
    assert "no longer uses 'NO_SUCH_ENV_VAR'" in str(error.value)


def test_colocated_reward_model_is_refused_at_startup():
    from hydra import compose, initialize_config_module

    from hpt.config import resolvers
    from hpt.main import CPU_OVERLAY, ConfigError, run

    resolvers.register()
    with initialize_config_module("hpt.config", version_base=None):
        config = compose(CPU_OVERLAY, overrides=["reward.reward_model.enable=true"])
    with pytest.raises(ConfigError, match="enable_resource_pool=true"):
        run(config)


def test_rebuild_without_rewards_names_the_fix():
    import torch
    from verl import DataProto

    from hpt.trainer.ray_trainer import _rollout_scores

    batch = DataProto.from_single_dict({"responses": torch.zeros(2, 3)})
    with pytest.raises(RuntimeError, match="enable_resource_pool=true"):
        _rollout_scores(batch)
