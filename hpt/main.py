"""``python -m hpt.main``: Hydra entry point for HPT training on verl.

GPU: ``python -m hpt.main data.train_files=... actor_rollout_ref.model.path=...`` (vLLM rollout).
CPU: ``python -m hpt.main --config-name hpt_trainer_cpu ...`` (HF rollout, gloo, FSDP2 on CPU).
"""

import logging
import math
import os
from pathlib import Path

import hydra
from omegaconf import DictConfig, OmegaConf

from hpt.config import resolvers

logger = logging.getLogger(__name__)

CPU_OVERLAY = "hpt_trainer_cpu"

resolvers.register()


class ConfigError(ValueError):
    """A configuration that would train wrongly or not at all; the message says what to change."""


def _check_device(config: DictConfig) -> None:
    """Fail early, naming the CPU overlay, when asked for a GPU run on a machine without one."""
    import torch

    if config.trainer.device != "cpu" and not torch.cuda.is_available():
        raise ConfigError(
            "No GPU found, but trainer.device="
            f"{config.trainer.device!r} and rollout {config.actor_rollout_ref.rollout.name!r} need one. "
            f"To train on the CPU use the CPU overlay: `python -m hpt.main --config-name {CPU_OVERLAY} ...` "
            "(or run exp_scripts/debug.sh)."
        )


def _check_hpt_keys(config: DictConfig) -> None:
    """The HPT rebuild needs verl's legacy loop and its balance hook; the gate name must exist."""
    from hpt.config.schema import HPTSettings

    if config.trainer.use_v1:
        raise ConfigError("hpt runs on verl's legacy trainer: set trainer.use_v1=false")
    if not config.trainer.balance_batch:
        raise ConfigError(
            "trainer.balance_batch=false disables the hook where HPT rebuilds the batch; set it to true"
        )
    try:
        settings = HPTSettings.from_trainer_config(config.trainer)
        if settings.gate.soft_table is not None:
            from hpt.core.gates.soft import validate_soft_table

            validate_soft_table(settings.gate.soft_table, int(config.actor_rollout_ref.rollout.n))
        _check_actor_keys(config)
        from hpt.config.method_checks import check_method_settings

        check_method_settings(config, settings.unify_strategy)
        _check_micro_batches(config)
        _check_sft_stream(config)
        _check_selection(config, settings)
        from hpt.rewards.startup import check_data_sources

        from hpt.data.checks import check_readable_files, check_training_rows

        check_readable_files(config)  # a truncated or non-parquet file fails here, not inside Ray
        check_data_sources(config)  # every data_source in the files has a verifier (hpt's dispatcher only)
        check_training_rows(config)  # string demonstrations, unique extra_info.index with the prompt history
        from hpt.config.agent_checks import check_agent_data

        check_agent_data(config)  # tool_agent rows: tools, a template with tool turns, positions, target_turns
        from hpt.data.vision_startup import check_vision

        check_vision(config)  # images vs model class, the VLM processor, unusable images, VLM + SFT stream
    except (ValueError, FileNotFoundError) as exc:
        raise ConfigError(str(exc)) from exc


def _check_selection(config: DictConfig, settings) -> None:
    """``trainer.rollout_selection``: known keys and values; with routing, gates that route all-fail groups to SFT."""
    from hpt.core.gates import build_gate
    from hpt.core.selection import check_routable
    from hpt.trainer.selection_loader import selection_config

    selection = selection_config(config.trainer)
    if selection.enable and selection.route_fail:
        names = {settings.unify_strategy, settings.gate_name_at_step(1)}
        gates = {name: build_gate(name) for name in names}
        check_routable(gates, settings.gate, int(config.actor_rollout_ref.rollout.n))


def _check_sft_stream(config: DictConfig) -> None:
    """A configured separate SFT stream (``data.sft_stream``) needs valid settings and files with rows."""
    from hpt.trainer.sft_stream import SFTStreamConfig

    stream = SFTStreamConfig.from_data_config(config.data)
    if stream is not None:
        stream.check_files()


def _check_actor_keys(config: DictConfig) -> None:
    """Build the actor's typed config now, so a bad loss name or coefficient fails before Ray starts."""
    from verl.utils.config import omega_conf_to_dataclass

    from hpt.trainer.custom_contract import CUSTOM_LOSS_MODE, load_custom_loss

    from hydra.errors import InstantiationException

    try:
        actor = omega_conf_to_dataclass(config.actor_rollout_ref.actor)
    except InstantiationException as exc:  # Hydra wraps the dataclass's own message
        cause = exc.__cause__ if exc.__cause__ is not None else exc
        raise ValueError(str(cause)) from exc
    if actor.policy_loss.get("loss_mode", "vanilla") == CUSTOM_LOSS_MODE:
        load_custom_loss(actor.custom_loss_path)
        # Ray workers may run in another directory: hand them an absolute path.
        config.actor_rollout_ref.actor.custom_loss_path = str(Path(actor.custom_loss_path).resolve())


def _check_micro_batches(config: DictConfig) -> None:
    """Every fixed micro-batch size must divide the rows it splits on each rank.

    The actor's update splits each PPO mini-batch (``ppo_mini_batch_size × n`` rows over the ranks).
    The log-prob passes split the whole step's batch: a gate that adds demonstration rows or routes
    prompts to SFT can make that batch any whole number of mini-batches, so there the log-prob
    micro-batches must divide one mini-batch too; plain GRPO (``unify_strategy=no``, no SFT warm-up,
    no SFT stream) keeps ``train_batch_size × n`` rows. verl itself only asserts this mid-training.
    """
    aro = config.actor_rollout_ref
    world = int(config.trainer.nnodes) * int(config.trainer.n_gpus_per_node)
    sp = int(aro.actor.get("ulysses_sequence_parallel_size", 1) or 1)  # deprecated key, used by verl when > 1
    if sp <= 1:
        sp = int(OmegaConf.select(aro, "actor.fsdp_config.ulysses_sequence_parallel_size", default=1) or 1)
    ranks = max(world // sp, 1)
    mini_rows = int(aro.actor.ppo_mini_batch_size) * int(aro.rollout.n)
    if mini_rows % ranks:
        raise ConfigError(
            f"a PPO mini-batch of {mini_rows} rows (actor.ppo_mini_batch_size={aro.actor.ppo_mini_batch_size} "
            f"prompts x rollout.n={aro.rollout.n}) does not split over {ranks} data-parallel rank(s); "
            "make ppo_mini_batch_size x n a multiple of the rank count"
        )
    rows = mini_rows // ranks
    keeps_batch = (
        str(config.trainer.unify_strategy) == "no"
        and int(config.trainer.get("sft_warmup_steps", 0)) == 0
        and OmegaConf.select(config, "data.sft_stream.train_files") is None
    )
    mini = (rows, "a PPO mini-batch")
    step = (int(config.data.train_batch_size) * int(aro.rollout.n) // ranks, "a step's batch") if keeps_batch else mini
    checked = {  # micro-batch key -> (its dynamic-batch switch, (rows it splits per rank, what they are))
        "actor.ppo_micro_batch_size_per_gpu": ("actor.use_dynamic_bsz", mini),
        "rollout.log_prob_micro_batch_size_per_gpu": ("rollout.log_prob_use_dynamic_bsz", step),
    }
    if aro.actor.get("use_kl_loss", False) or config.algorithm.get("use_kl_in_reward", False):
        checked["ref.log_prob_micro_batch_size_per_gpu"] = ("ref.log_prob_use_dynamic_bsz", step)
    for key, (dynamic, (split_rows, what)) in checked.items():
        micro = OmegaConf.select(aro, key)
        if not micro or OmegaConf.select(aro, dynamic, default=False) or split_rows % int(micro) == 0:
            continue
        raise ConfigError(
            f"actor_rollout_ref.{key}={micro} does not divide the {split_rows} rows of {what} per rank "
            f"(actor.ppo_mini_batch_size={aro.actor.ppo_mini_batch_size} prompts x rollout.n={aro.rollout.n} "
            f"/ {ranks} rank(s)); verl would stop during training. Set it to a divisor of {split_rows} "
            f"(e.g. {math.gcd(split_rows, int(micro))}) or change the batch sizes"
        )


def _import_extensions(config: DictConfig) -> None:
    """Import ``hpt.imports`` here and publish it for every Ray worker (see ``hpt.extensions``)."""
    from hpt import extensions

    entries = extensions.normalise(OmegaConf.select(config, "hpt.imports", default=None) or [])
    try:
        extensions.import_all(entries)
    except extensions.ExtensionImportError as exc:
        raise ConfigError(str(exc)) from exc
    if not entries:
        return
    published = {extensions.ENV_VAR: extensions.encode(entries),
                 extensions.PATHS_ENV_VAR: extensions.encode(extensions.search_paths(entries))}
    for name, value in published.items():
        os.environ[name] = value  # a local Ray cluster inherits the driver's environment
        # a running cluster (multi-node) gets it through Ray's runtime_env
        OmegaConf.update(config, f"ray_kwargs.ray_init.runtime_env.env_vars.{name}", value, force_add=True)


def _check_reward_model(config: DictConfig) -> None:
    """A colocated reward model scores after HPT's rebuild point; only a separate pool scores before it."""
    reward_model = OmegaConf.select(config, "reward.reward_model", default=None)
    if reward_model is not None and reward_model.get("enable", False) and not reward_model.get(
        "enable_resource_pool", False
    ):
        raise ConfigError(
            "reward.reward_model.enable=true with a colocated reward model: verl scores it after the point where "
            "HPT gates and rebuilds the batch (_balance_batch), so the gate would see no rewards. Give the reward "
            "model its own resource pool (reward.reward_model.enable_resource_pool=true and its n_gpus_per_node/"
            "nnodes), which scores every rollout as it is generated, or use a rule-based reward function"
        )


def run(config: DictConfig) -> None:
    """Validate the config, then hand it to verl's Ray launcher with hpt's task runner."""
    _check_device(config)
    if config.trainer.device == "cpu":
        os.environ["VERL_PLATFORM"] = "cpu"  # for code that reads it later; verl's own choice is already made
    OmegaConf.resolve(config)
    from hpt.compat import VerlCompatibilityError, check_verl

    try:
        check_verl()
    except VerlCompatibilityError as exc:
        raise ConfigError(str(exc)) from exc
    _import_extensions(config)
    _check_reward_model(config)
    _check_hpt_keys(config)

    from verl.trainer.main_ppo import run_ppo

    from hpt.plugin import check_registrations
    from hpt.trainer.task_runner import HPTTaskRunner

    check_registrations()
    run_ppo(config, task_runner_class=HPTTaskRunner)


@hydra.main(config_path="config", config_name="hpt_trainer", version_base=None)
def main(config: DictConfig) -> None:
    try:
        run(config)
    except ConfigError as exc:
        raise SystemExit(f"hpt: configuration error: {exc}") from None


def select_platform_before_hydra() -> None:
    """Choose hpt's CPU platform on a machine without a GPU, before Hydra composes the config.

    Composing imports verl (the config search path is ``pkg://verl.trainer.config``) and verl fixes
    its platform at import, so setting ``VERL_PLATFORM`` in ``run`` would come too late. A value the
    user set is kept.
    """
    if "VERL_PLATFORM" in os.environ:
        return
    import torch

    if not torch.cuda.is_available():
        os.environ["VERL_PLATFORM"] = "cpu"


if __name__ == "__main__":
    select_platform_before_hydra()
    main()
