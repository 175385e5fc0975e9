"""HF-transformers rollout for verl, rollout name ``hf``: generation where vLLM/SGLang cannot run (CPU).

verl 0.9.1 ships vLLM, SGLang and TensorRT-LLM rollouts only. This module supplies the three parts
verl's agent loop and trainer expect from a rollout backend:

- ``HFRolloutServer``: the Ray actor the agent loop sends token-in/token-out ``generate`` requests to.
  verl sends one request per sample, all at once; ``HFGenerationEngine`` (``hpt.cpu.hf_generation``)
  queues them and runs one left-padded ``model.generate`` per group of identical sampling parameters.
- ``HFRolloutReplica``: the ``RolloutReplica`` that launches that actor.
- ``HFServerAdapter``: the ``BaseRollout`` in each trainer worker; it forwards the actor's weights to the
  server after every update.

The model runs in float32 with SDPA attention on the CPU. Text and images (a model with a
``vision_config``, see ``hpt.cpu.hf_vision``); no video or audio.

``import verl`` must stay the first import: a Ray worker may import this module before anything else (to
unpickle the server class), and verl has to load its plugins, which register the CPU platform, before the
verl modules below look the platform up. Registration with verl happens at the bottom of the module.
"""

import verl  # noqa: F401  (first, see above)

import asyncio
import logging
import os
import time
from collections.abc import Iterable
from typing import Any

import ray
import torch
from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy
from verl.utils.config import omega_conf_to_dataclass
from verl.workers.config import HFModelConfig, RolloutConfig
from verl.workers.rollout.base import _ROLLOUT_REGISTRY, BaseRollout
from verl.workers.rollout.replica import RolloutReplica, RolloutReplicaRegistry, TokenOutput

from hpt.cpu.hf_generation import HFGenerationEngine, SequenceResult, request_seed
from hpt.cpu.hf_vision import load_policy, vision_settings

ROLLOUT_NAME = "hf"
ADAPTER_PATH = "hpt.cpu.hf_rollout.HFServerAdapter"

logger = logging.getLogger(__name__)
# verl's convention (see its rollout modules): INFO unless VERL_LOGGING_LEVEL says otherwise. Without an
# explicit level the per-batch and per-weight-update lines would be dropped by the WARNING root logger
# that ``import verl`` configures.
logger.setLevel(os.getenv("VERL_LOGGING_LEVEL", "INFO"))



# ------------------------------------------------------------------------------------------------
# Ray actor, replica and trainer-side adapter
# ------------------------------------------------------------------------------------------------


def server_actor_name(replica_rank: int, name_suffix: str = "") -> str:
    """The Ray actor name the adapter looks the server up by."""
    return f"{ROLLOUT_NAME}_rollout_server_{replica_rank}{name_suffix}"


def _eos_token_ids(model_config: HFModelConfig) -> list[int]:
    """Every id the model may end a response with: generation config, model config and tokenizer."""
    ids: list[int] = []
    for source in (model_config.generation_config, model_config.hf_config, model_config.tokenizer):
        value = getattr(source, "eos_token_id", None)
        ids.extend([value] if isinstance(value, int) else value or [])
    if not ids:
        raise ValueError(f"hf rollout: no EOS token id found for {model_config.path}")
    return list(dict.fromkeys(ids))


def _torch_threads(requested: int | None) -> int:
    """Intra-op threads for generation: ``requested``, capped at the CPUs this process may use.

    By default all of them (the rollout and the trainer take turns, they do not overlap). For tiny
    models one thread is faster: the per-op threading overhead exceeds the work, more so on a busy host.
    """
    available = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    return available if requested is None else max(1, min(int(requested), available))


class HFRolloutServer:
    """The Ray actor behind rollout ``hf``: the method surface verl's agent loop, replica and adapter call.

    There is no KV cache or device memory to manage between calls, so sleep/wake-up and cache calls are
    no-ops. ``abort_all_requests`` stops generation until ``resume_generation`` (partial rollouts).
    Sampled requests are seeded from ``rollout.seed``, the weights' step and the request id
    (``request_seed``): with ``rollout.full_determinism=true`` the same seed gives the same rollouts.
    Tuning lives in ``rollout.engine_kwargs.hf``: ``num_threads`` (torch threads, default all CPUs),
    ``batch_quiet_s`` and ``batch_max_wait_s`` (see ``RequestBatcher``).
    """

    def __init__(self, config: RolloutConfig, model_config: Any, replica_rank: int) -> None:
        self.config: RolloutConfig = omega_conf_to_dataclass(config)
        model_config = omega_conf_to_dataclass(model_config, dataclass_type=HFModelConfig)
        self.replica_rank = replica_rank
        self.global_steps: int | None = None
        hf_kwargs = (self.config.engine_kwargs or {}).get(ROLLOUT_NAME) or {}
        torch.set_num_threads(_torch_threads(hf_kwargs.get("num_threads")))
        model = load_policy(model_config.local_path, model_config.hf_config, model_config.trust_remote_code)
        vision = vision_settings(model_config.hf_config, model_config.processor, model_config.local_path)
        eos_token_ids = _eos_token_ids(model_config)
        pad_token_id = getattr(model_config.tokenizer, "pad_token_id", None)
        self.engine = HFGenerationEngine(
            model,
            eos_token_ids=eos_token_ids,
            pad_token_id=eos_token_ids[0] if pad_token_id is None else pad_token_id,
            prompt_length=self.config.prompt_length,
            response_length=self.config.response_length,
            max_batch_size=self.config.max_num_seqs,
            vision=vision,
            **{
                name: float(hf_kwargs[name])
                for name in ("batch_quiet_s", "batch_max_wait_s")
                if name in hf_kwargs
            },
        )
        self._admitting = asyncio.Event()
        self._admitting.set()
        self._reject_while_paused = False
        self._updated_weights: set[str] = set()
        logger.info(
            "hf rollout server %d: %s, %d threads, eos %s",
            replica_rank,
            model_config.local_path,
            torch.get_num_threads(),
            eos_token_ids,
        )

    async def ready(self) -> bool:
        """Lets the replica wait for the model to load, so a loading error surfaces at start-up."""
        return True

    async def generate(
        self,
        prompt_ids: list[int],
        sampling_params: dict[str, Any],
        request_id: str | None = None,
        image_data: list[Any] | None = None,
        video_data: list[Any] | None = None,
        audio_data: list[Any] | None = None,
        mm_processor_kwargs: dict[str, Any] | None = None,
        priority: int = 0,
    ) -> TokenOutput:
        if video_data or audio_data:
            raise NotImplementedError("hf rollout takes text and images, not video or audio")
        if not self._admitting.is_set():
            if self._reject_while_paused:
                return self._output(SequenceResult(token_ids=[], log_probs=None, stop_reason="aborted"))
            await self._admitting.wait()
        seed = request_seed(sampling_params, self.config.seed, self.global_steps, request_id)
        return self._output(await self.engine.generate(prompt_ids, sampling_params, seed, image_data or ()))

    def _output(self, result: SequenceResult) -> TokenOutput:
        return TokenOutput(
            token_ids=result.token_ids,
            log_probs=result.log_probs,
            stop_reason=result.stop_reason,
            extra_fields={"global_steps": self.global_steps},
        )

    async def load_weights(self, named_tensors: dict[str, torch.Tensor]) -> int:
        """Load one bucket of a weight update; ``finish_weight_update`` closes the update."""
        self._updated_weights.update(await self.engine.load_weights(named_tensors))
        return len(named_tensors)

    async def finish_weight_update(self, global_steps: int | None = None) -> dict[str, Any]:
        """Close a weight update: check that it covered the whole model and record the weights' step."""
        missing = self.engine.missing_weights(self._updated_weights)
        updated = len(self._updated_weights)
        self._updated_weights = set()
        if missing:
            raise RuntimeError(
                f"hf rollout: weight update left {len(missing)} tensors stale, e.g. {missing[:5]}"
            )
        if global_steps is not None:
            self.global_steps = global_steps
        return {"tensors": updated, "global_steps": self.global_steps}

    async def set_global_steps(self, global_steps: int) -> None:
        self.global_steps = global_steps

    async def abort_all_requests(self, reject_request: bool = False, **kwargs: Any) -> dict[str, Any]:
        self._reject_while_paused = reject_request
        self._admitting.clear()
        return {"aborted_queued": self.engine.abort()}

    async def resume_generation(self) -> None:
        self.engine.resume()
        self._admitting.set()

    async def wake_up(self, tags: list[str] | None = None, **kwargs: Any) -> None:
        return None

    async def sleep(self, **kwargs: Any) -> None:
        return None

    async def clear_kv_cache(self) -> None:
        return None

    async def release_kv_cache(self) -> None:
        return None

    async def resume_kv_cache(self) -> None:
        return None

    async def start_profile(self, **kwargs: Any) -> None:
        return None

    async def stop_profile(self) -> None:
        return None


class HFRolloutReplica(RolloutReplica):
    """Launches one ``HFRolloutServer`` per replica, on the node of the replica's trainer workers."""

    async def launch_servers(self) -> None:
        name = server_actor_name(self.replica_rank, self.name_suffix)
        # No CPU reservation: the server idles while the trainer works and vice versa, and Ray must not
        # count it against the logical CPUs the trainer's placement groups need.
        options: dict[str, Any] = {"name": name, "num_cpus": 0, "max_concurrency": self.max_concurrency}
        if self.workers:
            node_id = await self.workers[0].__ray_call__.remote(
                lambda worker: ray.get_runtime_context().get_node_id()
            )
            options["scheduling_strategy"] = NodeAffinitySchedulingStrategy(node_id=node_id, soft=False)
        server = (
            ray.remote(HFRolloutServer)
            .options(**options)
            .remote(config=self.config, model_config=self.model_config, replica_rank=self.replica_rank)
        )
        await server.ready.remote()
        self.servers = [server]
        self._server_handle = server
        self._server_address = name


class HFServerAdapter(BaseRollout):
    """The trainer-worker side of rollout ``hf``: sends the actor's weights to its replica's server.

    Weights travel through Ray in buckets of ``checkpoint_engine.update_weights_bucket_megabytes``, from
    the replica's first rank only; every rank still drains the weight generator, because producing each
    FSDP tensor is a collective all-gather that all ranks must join.
    """

    def __init__(
        self, config: RolloutConfig, model_config: HFModelConfig, device_mesh: Any, replica_rank: int = -1
    ) -> None:
        super().__init__(config, model_config, device_mesh)
        rank = int(os.environ.get("RANK", "0"))
        rollout_world_size = (
            self.config.tensor_model_parallel_size
            * self.config.data_parallel_size
            * self.config.pipeline_model_parallel_size
        )
        self.replica_rank = rank // rollout_world_size if replica_rank == -1 else replica_rank
        self._is_sender = rank % rollout_world_size == 0
        self._bucket_bytes = max(1, self.config.checkpoint_engine.update_weights_bucket_megabytes) << 20
        self._server: ray.actor.ActorHandle | None = None

    def _server_handle(self) -> ray.actor.ActorHandle:
        # Looked up lazily: the trainer builds this adapter before the replica launches the server.
        if self._server is None:
            self._server = ray.get_actor(server_actor_name(self.replica_rank))
        return self._server

    async def resume(self, tags: list[str]) -> None:
        return None

    async def release(self) -> None:
        return None

    async def update_weights(
        self,
        weights: Iterable[tuple[str, torch.Tensor]],
        wire_format: str = "named_tensors",
        global_steps: int | None = None,
        peft_config: Any = None,
        **kwargs: Any,
    ) -> None:
        if wire_format != "named_tensors":
            raise NotImplementedError(f"hf rollout receives full named tensors only, not {wire_format!r}")
        if peft_config is not None:
            raise NotImplementedError("hf rollout cannot load LoRA adapters; set model.lora.merge=True")
        start = time.perf_counter()
        bucket: dict[str, torch.Tensor] = {}
        bucket_bytes = total_bytes = 0
        for name, tensor in weights:
            if not self._is_sender:
                continue
            # clone: a compact CPU copy, so Ray pickles this tensor and not a larger storage it views
            bucket[name] = tensor.detach().to("cpu").clone()
            bucket_bytes += bucket[name].nbytes
            if bucket_bytes >= self._bucket_bytes:
                await self._server_handle().load_weights.remote(bucket)
                total_bytes += bucket_bytes
                bucket, bucket_bytes = {}, 0
        if not self._is_sender:
            return
        if bucket:
            await self._server_handle().load_weights.remote(bucket)
            total_bytes += bucket_bytes
        summary = await self._server_handle().finish_weight_update.remote(global_steps)
        logger.info(
            "hf rollout: weights synced to replica %d (%d tensors, %.1f MB, step %s) in %.2fs",
            self.replica_rank,
            summary["tensors"],
            total_bytes / 2**20,
            summary["global_steps"],
            time.perf_counter() - start,
        )


_ROLLOUT_REGISTRY[(ROLLOUT_NAME, "async")] = ADAPTER_PATH
RolloutReplicaRegistry.register(ROLLOUT_NAME, lambda: HFRolloutReplica)
