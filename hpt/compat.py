"""Every verl internal hpt relies on, checked against the installed verl at start-up.

hpt extends verl 0.9.1 at its seams, and some of those seams are private (a module-level dict, a
method with a leading underscore, a keyword list). A different verl release may move or rename any
of them, and the failure would then surface mid-training as an ``AttributeError`` or a silently
unpatched code path. ``check_verl`` looks every one of them up once, before Ray starts, and names
the supported version and each missing or changed piece.
"""

from __future__ import annotations

import importlib
import inspect
import logging
from collections.abc import Callable
from dataclasses import dataclass, fields, is_dataclass
from typing import Any

logger = logging.getLogger(__name__)

SUPPORTED_VERL = "0.9.1"


class VerlCompatibilityError(RuntimeError):
    """The installed verl lacks (or changed) an internal hpt uses."""


@dataclass(frozen=True)
class Requirement:
    """One verl object hpt uses: where it lives, the parameters it must accept, and why hpt needs it.

    ``params`` are parameter names the callable must accept (``None``: any signature); ``mentions``
    is a string its source must contain, for behaviour that no signature shows (an env var it reads).
    For a dataclass, ``params`` are field names.
    """

    module: str
    attr: str
    why: str
    params: tuple[str, ...] | None = None
    mentions: str | None = None

    @property
    def name(self) -> str:
        return f"{self.module}.{self.attr}"


_TRAINER = "verl.trainer.ppo.ray_trainer"
_ALGOS = "verl.trainer.ppo.core_algos"
_FSDP = "verl.workers.engine.fsdp.transformer_impl"
_RUNNER = "verl.trainer.main_ppo_v0"
_CT = "verl.utils.tokenizer.continuous_token"
_TOOL_LOOP = "verl.experimental.agent_loop.tool_agent_loop"
_DATASET = "verl.utils.dataset.rl_dataset"

REQUIREMENTS: tuple[Requirement, ...] = (
    # platform and CPU set-up (hpt/cpu/platform.py)
    Requirement("verl.plugin.platform", "PlatformBase", "base class of the CPU platform"),
    Requirement("verl.plugin.platform", "PlatformRegistry.register", "registers the CPU platform", ("platform",)),
    Requirement("verl.utils.distributed", "initialize_global_process_group_ray",
                "wrapped to default to gloo on CPU", ("timeout_second", "backend")),
    Requirement("verl.workers.engine.base", "EngineRegistry.get_engine_cls",
                "CPU runs look the FSDP engine up under VERL_ENGINE_DEVICE", mentions="VERL_ENGINE_DEVICE"),
    # the counting engine (hpt/trainer/engine.py)
    Requirement("verl.workers.engine.base", "EngineRegistry._engines",
                "the FSDP language-model engine is swapped for hpt's counting engine"),
    Requirement(_FSDP, "FSDPEngineWithLMHead.forward_backward_batch",
                "overridden to count the hybrid loss's normalisers", ("self", "data", "loss_function", "forward_only")),
    Requirement(_FSDP, "FSDPEngineWithLMHead.train_batch",
                "overridden to count skipped non-finite updates", ("self", "data", "loss_function")),
    Requirement(_FSDP, "FSDPEngineWithLMHead.optimizer_step",
                "skips the update on a non-finite gradient norm", mentions="isfinite"),
    Requirement(_FSDP, "FSDPEngineWithLMHead.get_data_parallel_group", "all-reduce group of the counts"),
    # the hf rollout (hpt/cpu/hf_rollout.py)
    Requirement("verl.workers.rollout.base", "_ROLLOUT_REGISTRY", "rollout 'hf' is registered in this dict"),
    Requirement("verl.workers.rollout.base", "BaseRollout", "base class of the hf rollout adapter"),
    Requirement("verl.workers.rollout.replica", "RolloutReplicaRegistry.register", "registers the hf replica"),
    Requirement("verl.workers.rollout.replica", "RolloutReplica.launch_servers", "started by the hf replica"),
    # the search tool (hpt/tools/search.py)
    Requirement("verl.tools.base_tool", "BaseTool.execute", "the search tool overrides it",
                ("self", "instance_id", "parameters")),
    Requirement("verl.experimental.agent_loop.tool_agent_loop", "ToolAgentLoop._call_tool",
                "passes the trajectory's AgentData to BaseTool.execute (tools count calls; crop reads its images)",
                mentions="agent_data=agent_data"),
    Requirement("verl.experimental.agent_loop.agent_loop", "AgentLoopWorker._postprocess",
                "copies each trajectory's extra_fields (the tool's call counts) into non_tensor_batch",
                mentions="extra_fields"),
    # the loss (hpt/trainer/actor_loss.py, custom_contract.py, policy_losses.py)
    Requirement(_ALGOS, "agg_loss", "aggregates every term over hpt's global counts",
                ("loss_mat", "loss_mask", "loss_agg_mode", "dp_size", "batch_num_tokens", "global_batch_size",
                 "loss_scale_factor")),
    Requirement(_ALGOS, "get_policy_loss_fn", "the RL term uses verl's registered policy losses", ("name",)),
    Requirement(_ALGOS, "register_policy_loss", "registers 'unclipped' and the custom loss", ("name",)),
    Requirement(_ALGOS, "POLICY_LOSS_REGISTRY", "the custom loss file is looked up here"),
    Requirement(_ALGOS, "kl_penalty", "KL term on on-policy tokens", ("logprob", "ref_logprob", "kl_penalty")),
    Requirement("verl.workers.config", "FSDPActorConfig", "HPTActorConfig extends it; global_batch_info is "
                "swapped for hpt's GlobalBatchInfo", ("global_batch_info", "policy_loss", "loss_agg_mode")),
    Requirement("verl.workers.utils.losses", "ppo_loss", "fills global_batch_info with the aggregation keys",
                mentions="global_batch_info"),
    Requirement("verl.workers.utils.padding", "no_padding_2_padding", "loss inputs to padded tensors",
                ("tensor", "data")),
    Requirement("verl.utils.tensordict_utils", "assign_non_tensor", "attaches the counts to the mini-batch"),
    Requirement("verl.utils.metric", "Metric", "loss metrics", ("aggregation", "value")),
    Requirement("verl.workers.engine_workers", "ActorRolloutRefWorker.set_loss_fn", "installs the hybrid loss",
                ("self", "loss_fn")),
    # the trainer (hpt/trainer/ray_trainer.py, task_runner.py, hpt/main.py)
    Requirement(_TRAINER, "RayPPOTrainer._balance_batch", "HPT's rebuild point (after reward, before log-probs)",
                ("self", "batch", "metrics", "logging_prefix", "keep_minibatch")),
    Requirement(_TRAINER, "RayPPOTrainer.fit", "calls _balance_batch before the reward-model pass",
                mentions="self._balance_batch(batch"),
    Requirement(_TRAINER, "RayPPOTrainer.init_workers", "overridden to install the loss", ("self",)),
    Requirement(_TRAINER, "RayPPOTrainer._update_actor", "overridden to pass the step", ("self", "batch")),
    Requirement(_TRAINER, "RayPPOTrainer._get_dp_size", "rows must divide over DP ranks",
                ("self", "worker_group", "role")),
    Requirement(_TRAINER, "RayPPOTrainer._save_checkpoint", "HPT run state joins verl's checkpoint", ("self",)),
    Requirement(_TRAINER, "RayPPOTrainer._load_checkpoint", "HPT run state is restored with it", ("self",)),
    Requirement(_TRAINER, "RayPPOTrainer._save_checkpoint", "the dataloader state is data.pt in global_step_N",
                mentions="data.pt"),
    Requirement("verl.utils.checkpoint.checkpoint_manager", "get_checkpoint_tracker_filename",
                "resume finds the step verl's tracker names", ("root_path",)),
    Requirement("verl.experimental.agent_loop.single_turn_agent_loop", "SingleTurnAgentLoop.run",
                "stable request ids (det-<index>) seed the hf rollout's sampling", mentions="det-"),
    Requirement(_TRAINER, "RayPPOTrainer.fit", "rollout selection replaces self.train_dataloader, which fit iterates",
                mentions="self.train_dataloader"),
    Requirement("verl.utils.tokenizer.continuous_token_wiring", "create_continuous_token_builder",
                "SFT-stream and routed prompts are templated as the agent loop templates them"),
    # multi-turn demonstrations and tool telemetry (hpt/trainer/multiturn.py, agent_metrics.py)
    Requirement(_CT, "ContinuousTokenBuilder.build_initial_tokens", "tool-agent prompts are templated with the tools",
                ("self", "messages", "tools")),
    Requirement(_CT, "ContinuousTokenBuilder.merge_assistant_tokens", "a demonstration's assistant turn is appended "
                "as a rollout's generated turn", ("self", "runtime_token_ids", "assistant_token_ids")),
    Requirement(_CT, "ContinuousTokenBuilder.merge_context_tokens", "a demonstration's tool results are merged as a "
                "rollout's", ("self", "previous_messages", "updated_messages", "runtime_token_ids", "tools")),
    Requirement(_CT, "ContinuousTokenBuilder.align_response_metadata", "the demonstration's loss mask",
                ("self", "merge_result", "response_mask")),
    Requirement(_TOOL_LOOP, "ToolAgentLoop._handle_generating_state", "the replay stops where a rollout stops",
                mentions="len(agent_data.response_mask) >= self.response_length"),
    Requirement(_TOOL_LOOP, "ToolAgentLoop._handle_processing_tools_state", "the replay drops a tool turn that "
                "overflows, as a rollout does", mentions="if len(response_mask) >= self.response_length"),
    Requirement(_TOOL_LOOP, "ToolAgentLoop._call_tool", "tool results are clipped as the rollout clips them",
                mentions="max_tool_response_length"),
    Requirement(_TOOL_LOOP, "ToolAgentLoop._call_tool", "hpt/agent/tool_errors counts this observation",
                mentions="Unknown function '"),
    Requirement(_TOOL_LOOP, "ToolAgentLoop._call_tool", "hpt/agent/tool_errors counts this observation",
                mentions="Invalid JSON in arguments for '"),
    Requirement(_TOOL_LOOP, "ToolAgentLoop._call_tool", "hpt/agent/tool_errors counts this observation",
                mentions="Error executing tool '"),
    Requirement("verl.experimental.agent_loop.tool_parser", "ToolParser.get_tool_parser",
                "demonstrations and rollouts are parsed by the rollout's tool parser", ("name", "tokenizer")),
    Requirement("verl.tools.tool_registry", "load_all_tools", "the trainer loads the rollout's tools once",
                ("tool_config_path", "function_tool_path")),
    Requirement("verl.tools.schemas", "OpenAIFunctionCallSchema.from_openai_function_parsed_schema",
                "a demonstration's history message is the rollout's", ("parsed_schema",)),
    Requirement("verl.utils.import_utils", "resolve_config_path", "tool paths resolve as the agent loop resolves them"),
    Requirement("verl.experimental.agent_loop.agent_loop", "AgentLoopWorker._postprocess",
                "hpt/agent/turns_mean reads each rollout's __num_turns__", mentions="__num_turns__"),
    Requirement(_RUNNER, "BaseTaskRunner.add_actor_rollout_worker", "HPTTaskRunner's set-up", ("self", "config")),
    Requirement(_RUNNER, "BaseTaskRunner.add_ref_policy_worker", "HPTTaskRunner's set-up", ("self", "config")),
    Requirement(_RUNNER, "BaseTaskRunner.init_resource_pool_mgr", "HPTTaskRunner's set-up", ("self", "config")),
    Requirement("verl.trainer.ppo.utils", "create_rl_dataset", "train, validation and SFT-stream datasets",
                ("data_paths", "data_config", "tokenizer", "processor", "is_train", "max_samples")),
    Requirement("verl.trainer.ppo.utils", "create_rl_sampler", "wrapped by the prompt-history sampler",
                ("data_config", "dataset")),
    Requirement("verl.trainer.main_ppo", "run_ppo", "launched with HPTTaskRunner", ("config", "task_runner_class")),
    # vision-language policies (hpt/cpu/vision_dataset.py, hf_vision.py, hpt/trainer/batch.py)
    Requirement(_DATASET, "get_dataset_class", "selects hpt's Pillow dataset (data.custom_cls)", mentions="custom_cls"),
    Requirement(_DATASET, "RLHFDataset._process_multi_modal_info",
                "overridden to read images without qwen_vl_utils/torchvision",
                ("messages", "image_patch_size", "config")),
    Requirement(_DATASET, "RLHFDataset._extract_audio_info", "kept for audio parts by the Pillow dataset",
                ("messages",)),
    Requirement("verl.utils.tokenizer.tokenizer", "hf_processor",
                "builds the VLM processor with get_rope_index bound (None on failure: hpt checks first)",
                mentions="Qwen2_5_VLProcessor"),
    Requirement("verl.workers.config", "HFModelConfig", "the hf rollout reads the processor and HF config",
                ("processor", "hf_config", "local_path")),
    Requirement("verl.experimental.agent_loop.agent_loop", "AgentLoopWorker._compute_position_ids",
                "VLM rows carry (1, 4, L) positions (text + mrope t/h/w) that demo rows continue",
                mentions="torch.cat((text_position_ids, vision_position_ids), dim=1)"),
    Requirement(_TRAINER, "RayPPOTrainer.fit", "pad rows' empty multi_modal_inputs are skipped when counting images",
                mentions='if "image_grid_thw" not in multi_modal_input.keys()'),
    # visual RAG (hpt/tools/pages.py, crop.py, hpt/trainer/multiturn.py, vision_rows.py, vl_forward.py)
    Requirement("verl.models.transformers.qwen2_vl", "_get_input_embeds", "wrapped: its image-free path adds "
                "the vision tower's raw output (a model output in transformers 5) to the embeddings",
                ("model", "input_ids", "attention_mask", "pixel_values", "pixel_values_videos"),
                mentions="0.0 * image_embeds.mean()"),
    Requirement("verl.models.transformers.qwen2_vl", "qwen2_vl_base_forward", "looks the wrapped function up "
                "in its module at call time", mentions="= _get_input_embeds("),
    Requirement("verl.utils.transformers_compat", "unpack_visual_output", "the vision tower's embeddings",
                ("visual_output",)),
    Requirement("verl.tools.schemas", "ToolResponse", "page search and crop answer with images", ("image",)),
    Requirement(_TOOL_LOOP, "ToolAgentLoop._handle_processing_tools_state", "an image tool response is a tool message "
                "of image parts, then the text; demonstrations replay it the same way",
                mentions='content.append({"type": "image", "image": img})'),
    Requirement(_TOOL_LOOP, "ToolAgentLoop._handle_processing_tools_state", "a tool response's images join the "
                "rollout's images only once its turn fits, as the replay keeps them",
                mentions="agent_data.image_data.append(img)"),
    Requirement("verl.experimental.agent_loop.agent_loop", "AgentLoopWorker._compute_position_ids",
                "demonstration rows with images take their mrope positions from the processor's bound "
                "get_rope_index with mm_token_type_ids, as rollout rows do", mentions="self.processor.get_rope_index("),
)


def _resolve(requirement: Requirement) -> Any:
    obj: Any = importlib.import_module(requirement.module)
    for part in requirement.attr.split("."):
        obj = getattr(obj, part)
    return obj


def _accepted(obj: Any) -> set[str]:
    if is_dataclass(obj):
        return {f.name for f in fields(obj)}
    return set(inspect.signature(obj).parameters)


def problem(requirement: Requirement, resolve: Callable[[Requirement], Any] = _resolve) -> str | None:
    """What is wrong with one requirement in the installed verl, or None."""
    try:
        obj = resolve(requirement)
    except (ImportError, AttributeError) as exc:
        return f"{requirement.name} is missing ({type(exc).__name__}: {exc})"
    if requirement.params is not None:
        try:
            missing = [name for name in requirement.params if name not in _accepted(obj)]
        except (TypeError, ValueError) as exc:
            return f"{requirement.name} has no inspectable signature ({exc})"
        if missing:
            return f"{requirement.name} no longer accepts {', '.join(missing)}"
    if requirement.mentions is not None:
        try:
            source = inspect.getsource(obj)
        except (OSError, TypeError) as exc:
            return f"{requirement.name}: source unavailable to check ({exc})"
        if requirement.mentions not in source:
            return f"{requirement.name} no longer uses {requirement.mentions!r}"
    return None


def check_verl(requirements: tuple[Requirement, ...] = REQUIREMENTS) -> None:
    """Raise ``VerlCompatibilityError`` naming every missing or changed verl internal."""
    import verl

    installed = getattr(verl, "__version__", "unknown")
    problems = [(r, p) for r in requirements if (p := problem(r)) is not None]
    if problems:
        lines = "\n".join(f"  - {p} (hpt uses it: {r.why})" for r, p in problems)
        raise VerlCompatibilityError(
            f"hpt supports verl=={SUPPORTED_VERL}; the installed verl {installed} lacks what hpt patches or "
            f"extends:\n{lines}\nInstall the supported version: pip install verl=={SUPPORTED_VERL}"
        )
    if installed != SUPPORTED_VERL:
        logger.warning("hpt is tested with verl==%s, found %s; every internal hpt uses is present", SUPPORTED_VERL,
                       installed)
