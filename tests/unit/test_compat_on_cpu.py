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
