"""The Ray task that builds datasets, workers and ``HPTRayTrainer`` and runs training.

verl's own ``TaskRunner`` hard-codes ``RayPPOTrainer``; this one follows the same set-up through
verl's ``BaseTaskRunner`` helpers and constructs the HPT trainer instead.
"""

import verl  # noqa: F401  (first: lets verl load hpt's plugin before the imports below)
import ray
from omegaconf import OmegaConf
from verl.trainer.main_ppo_v0 import BaseTaskRunner
from verl.trainer.ppo.utils import create_rl_dataset, create_rl_sampler, need_critic, need_reference_policy
from verl.utils.config import omega_conf_to_dataclass, validate_config
from verl.utils.dataset.rl_dataset import collate_fn

from hpt.core.history import HistoryConfig, PromptHistory
from hpt.plugin import check_registrations
from hpt.trainer.history_sampler import HistoryFilteredSampler, prompt_keys
from hpt.trainer.multiturn import demo_source
from hpt.trainer.ray_trainer import HPTRayTrainer
from hpt.trainer.selection_loader import selection_config
from hpt.trainer.sft_stream import SFTStream, SFTStreamConfig, prompt_builder


@ray.remote
class HPTTaskRunner(BaseTaskRunner):
    """Runs one HPT training job inside the Ray cluster."""

    def run(self, config):
        check_registrations()
        OmegaConf.resolve(config)
        actor_rollout_cls, worker_group_cls = self.add_actor_rollout_worker(config)
        self.add_critic_worker(config)
        self.add_reward_model_resource_pool(config)
        self.add_teacher_model_resource_pool(config)
        self.add_ref_policy_worker(config, actor_rollout_cls)
        validate_config(
            config=config, use_reference_policy=need_reference_policy(config), use_critic=need_critic(config)
        )
        model_config = omega_conf_to_dataclass(config.actor_rollout_ref.model)
        tokenizer, processor = model_config.tokenizer, model_config.processor

        def dataset(files, is_train: bool, max_samples_key: str):
            return create_rl_dataset(
                files, config.data, tokenizer, processor, is_train=is_train,
                max_samples=config.data.get(max_samples_key, -1),
            )

        train_dataset = dataset(config.data.train_files, True, "train_max_samples")
        builder = prompt_builder(tokenizer, config.data, processor, _model_type(model_config))
        demos = demo_source(config, tokenizer, builder)  # tools loaded once, as the agent loop loads them
        history = PromptHistory(HistoryConfig(remove_sfted=bool(config.trainer.remove_sfted_data),
                                              skip_solved=bool(config.trainer.skip_solved_prompts)))
        trainer = HPTRayTrainer(
            config=config,
            tokenizer=tokenizer,
            processor=processor,
            role_worker_mapping=self.role_worker_mapping,
            resource_pool_manager=self.init_resource_pool_mgr(config),
            ray_worker_group_cls=worker_group_cls,
            train_dataset=train_dataset,
            val_dataset=dataset(config.data.val_files, False, "val_max_samples"),
            collate_fn=collate_fn,
            train_sampler=_train_sampler(config, train_dataset, history),
            sft_stream=_sft_stream(config, model_config, demos),
            history=history,
            prompt_builder=builder if selection_config(config.trainer).enable else None,
            demo_source=demos,
        )
        trainer.init_workers()
        trainer.fit()


def _train_sampler(config, train_dataset, history: PromptHistory) -> HistoryFilteredSampler:
    """verl's sampler, wrapped for exact resumption and, with a prompt-history option, to skip prompts."""
    sampler = create_rl_sampler(config.data, train_dataset)
    if not history.config.enabled:
        return HistoryFilteredSampler(sampler)
    batch_size = int(config.data.get("gen_batch_size") or config.data.train_batch_size)
    keys = prompt_keys(train_dataset.dataframe["extra_info"])
    return HistoryFilteredSampler(sampler, keys, history, batch_size=batch_size)


def _model_type(model_config) -> str | None:
    model_type = getattr(model_config.hf_config, "model_type", None)
    return model_type if isinstance(model_type, str) else None


def _sft_stream(config, model_config, demos) -> SFTStream | None:
    """The separate SFT stream of ``data.sft_stream``, or None when its ``train_files`` is null."""
    stream_config = SFTStreamConfig.from_data_config(config.data)
    if stream_config is None:
        return None
    return SFTStream(
        stream_config,
        config.data,
        model_config.tokenizer,
        model_config.processor,
        hf_model_type=_model_type(model_config),
        demo_source=demos,
    )
