"""Batched HF-transformers generation behind the ``hf`` rollout: requests, their grouping, the engine.

verl's agent loop sends one token-in/token-out request per sample, all at once. ``RequestBatcher``
queues them and ``HFGenerationEngine`` runs one left-padded ``model.generate`` per group of requests
with identical sampling parameters; every sampled row draws from its own generator
(``request_seed``), so a row's tokens do not depend on the batch it ran in. The Ray server, replica
and adapter that expose this to verl live in ``hpt.cpu.hf_rollout``.

``import verl`` stays first for the reason ``hpt.cpu.hf_rollout`` gives.
"""

import verl  # noqa: F401  (first, see above)

import asyncio
import dataclasses
import hashlib
import logging
import os
import threading
import time
from collections.abc import Awaitable, Callable, Hashable, Iterable, Mapping, Sequence
from typing import Any, TypeVar

import torch
from transformers import (
    GenerationConfig,
    LogitsProcessor,
    LogitsProcessorList,
    PreTrainedModel,
    StoppingCriteria,
    StoppingCriteriaList,
    TemperatureLogitsWarper,
    TopKLogitsWarper,
    TopPLogitsWarper,
)
from verl.utils import normalize_token_ids

from hpt.cpu.hf_vision import VisionSettings, batch_vision_inputs
from hpt.padding import left_pad


logger = logging.getLogger(__name__)
logger.setLevel(os.getenv("VERL_LOGGING_LEVEL", "INFO"))  # verl's convention, as in hpt.cpu.hf_rollout

Item = TypeVar("Item")


# ------------------------------------------------------------------------------------------------
# Requests and the pure batching logic
# ------------------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class SamplingKey:
    """The sampling parameters requests must share to run in the same ``generate`` call.

    Greedy requests are normalised (no temperature, top-p or top-k), so they all share one key.
    ``top_k`` uses the transformers convention: 0 means off. Seeds are per request (each row of a
    batch samples from its own generator), so they do not split batches.
    """

    do_sample: bool
    temperature: float = 1.0
    top_p: float = 1.0
    top_k: int = 0
    repetition_penalty: float = 1.0
    stop_token_ids: tuple[int, ...] = ()


@dataclasses.dataclass(frozen=True)
class GenerationRequest:
    """One sample's request. ``max_new_tokens`` is per request: a batch runs to its largest and cuts.

    ``seed`` fixes the request's own sampling stream (None: drawn from torch's global RNG).
    """

    prompt_ids: tuple[int, ...]
    key: SamplingKey
    max_new_tokens: int
    want_log_probs: bool = False
    seed: int | None = None
    images: tuple[Any, ...] = dataclasses.field(default=(), compare=False)  # PIL images, VLM policies only


@dataclasses.dataclass(frozen=True)
class SequenceResult:
    """What one request gets back; ``stop_reason`` uses verl's values ("completed" or "aborted")."""

    token_ids: list[int]
    log_probs: list[float] | None
    stop_reason: str


def parse_sampling_params(
    sampling_params: Mapping[str, Any], default_max_tokens: int
) -> tuple[SamplingKey, int, bool]:
    """Read verl's sampling dict (vLLM-style keys) into ``(key, max_new_tokens, want_log_probs)``.

    Temperature 0 or ``do_sample=False`` means greedy, top_k -1 means off, and ``max_tokens`` (or
    SGLang's ``max_new_tokens``) overrides the server's default; keys HF has no equivalent for are ignored.
    """
    temperature = float(sampling_params.get("temperature", 1.0))
    do_sample = bool(sampling_params.get("do_sample", True)) and temperature > 0
    stop_token_ids = tuple(int(t) for t in sampling_params.get("stop_token_ids") or ())
    repetition_penalty = float(sampling_params.get("repetition_penalty", 1.0))
    if do_sample:
        key = SamplingKey(
            do_sample=True,
            temperature=temperature,
            top_p=float(sampling_params.get("top_p", 1.0)),
            top_k=max(int(sampling_params.get("top_k", -1)), 0),
            repetition_penalty=repetition_penalty,
            stop_token_ids=stop_token_ids,
        )
    else:
        key = SamplingKey(
            do_sample=False, repetition_penalty=repetition_penalty, stop_token_ids=stop_token_ids
        )
    max_tokens = sampling_params.get("max_tokens", sampling_params.get("max_new_tokens"))
    max_new_tokens = max(1, int(default_max_tokens if max_tokens is None else max_tokens))
    return key, max_new_tokens, bool(sampling_params.get("logprobs"))


def request_seed(
    sampling_params: Mapping[str, Any], rollout_seed: int, global_steps: int | None, request_id: str | None
) -> int | None:
    """The seed of one sampled request: the request's own ``seed`` if it sets one (vLLM's meaning),
    else one derived from ``rollout.seed``, the weights' training step and the request id.

    verl's agent loop gives requests stable ids (``det-<sample index>``) when
    ``rollout.full_determinism`` is on, so a run's rollouts are then the same on every run and after a
    resume; otherwise ids are random and so are the rollouts. Greedy requests need no seed (None).
    """
    if not (bool(sampling_params.get("do_sample", True)) and float(sampling_params.get("temperature", 1.0)) > 0):
        return None
    if sampling_params.get("seed") is not None:
        return int(sampling_params["seed"])
    if request_id is None:
        return None
    digest = hashlib.sha256(f"{rollout_seed}:{global_steps}:{request_id}".encode()).digest()
    return int.from_bytes(digest[:8], "little") & (2**63 - 1)


def group_by_key(
    items: Iterable[Item], key: Callable[[Item], Hashable], max_group_size: int
) -> list[list[Item]]:
    """Split items into groups of equal key (in order of first appearance) of at most ``max_group_size``."""
    groups: dict[Hashable, list[Item]] = {}
    for item in items:
        groups.setdefault(key(item), []).append(item)
    return [
        group[start : start + max_group_size]
        for group in groups.values()
        for start in range(0, len(group), max_group_size)
    ]


def split_generations(
    new_tokens: torch.Tensor,
    token_log_probs: torch.Tensor | None,
    stop_token_ids: Iterable[int],
    limits: Sequence[int],
    aborted: bool = False,
) -> list[SequenceResult]:
    """Cut each row of a batched ``generate`` output back into its own request's result.

    A row ends at its own ``limit`` or at its first stop token, which is kept (as vLLM does); whatever
    ``generate`` appended after that (pad tokens of finished rows) is dropped. A row that ended neither
    way was cut short by an abort.
    """
    stops = set(stop_token_ids)
    results = []
    for row, limit in enumerate(limits):
        token_ids = new_tokens[row, :limit].tolist()
        end = next((i + 1 for i, token in enumerate(token_ids) if token in stops), None)
        finished = end is not None or len(token_ids) == limit
        token_ids = token_ids[:end]
        log_probs = token_log_probs[row, : len(token_ids)].tolist() if token_log_probs is not None else None
        stop_reason = "aborted" if aborted and not finished else "completed"
        results.append(SequenceResult(token_ids=token_ids, log_probs=log_probs, stop_reason=stop_reason))
    return results


# ------------------------------------------------------------------------------------------------
# Batching concurrent requests
# ------------------------------------------------------------------------------------------------


class RequestBatcher:
    """Runs concurrent requests as a few batched calls: one worker task owns the queue.

    The worker waits for a request, then keeps collecting while more keep arriving (until a quiet gap of
    ``quiet_s``, at most ``max_wait_s`` in all), because verl's agent loop fires one request per sample at
    the same moment but they reach the server spread over tens of milliseconds (each is tokenized and
    routed through verl's load balancer first). It then takes everything queued, groups it
    by sampling key and awaits ``run_batch`` per group, one group at a time. Requests that arrive while a
    batch runs are taken together in the next round, so a busy server batches without any waiting.
    """

    def __init__(
        self,
        run_batch: Callable[[list[GenerationRequest]], Awaitable[list[SequenceResult]]],
        max_batch_size: int,
        quiet_s: float = 0.05,
        max_wait_s: float = 0.5,
    ) -> None:
        self._run_batch = run_batch
        self._max_batch_size = max_batch_size
        self._quiet_s = quiet_s
        self._max_wait_s = max_wait_s
        self._pending: list[tuple[GenerationRequest, asyncio.Future[SequenceResult]]] = []
        self._wakeup = asyncio.Event()
        self._worker: asyncio.Task[None] | None = None

    async def submit(self, request: GenerationRequest) -> SequenceResult:
        """Queue one request and wait for its own result."""
        future: asyncio.Future[SequenceResult] = asyncio.get_running_loop().create_future()
        self._pending.append((request, future))
        self._wakeup.set()
        if self._worker is None or self._worker.done():
            self._worker = asyncio.create_task(self._serve())
        return await future

    def abort_pending(self) -> int:
        """Answer every queued (not yet running) request with an empty "aborted" result."""
        pending, self._pending = self._pending, []
        for _, future in pending:
            if not future.done():
                future.set_result(SequenceResult(token_ids=[], log_probs=None, stop_reason="aborted"))
        return len(pending)

    async def _collect(self) -> list[tuple[GenerationRequest, asyncio.Future[SequenceResult]]]:
        await self._wakeup.wait()
        loop = asyncio.get_running_loop()
        started = loop.time()
        deadline = started + self._max_wait_s
        seen = -1
        while seen != len(self._pending) and len(self._pending) < self._max_batch_size:
            seen = len(self._pending)
            remaining = deadline - loop.time()
            if remaining <= 0:
                break
            await asyncio.sleep(min(self._quiet_s, remaining))
        self._wakeup.clear()
        pending, self._pending = self._pending, []
        logger.debug("hf rollout: collected %d requests in %.3fs", len(pending), loop.time() - started)
        return pending

    async def _serve(self) -> None:
        while True:
            pending = await self._collect()
            for group in group_by_key(
                pending, key=lambda entry: entry[0].key, max_group_size=self._max_batch_size
            ):
                live = [(request, future) for request, future in group if not future.done()]
                if not live:
                    continue
                try:
                    results = await self._run_batch([request for request, _ in live])
                except Exception as error:  # one failed batch must fail its callers, not the worker
                    for _, future in live:
                        if not future.done():
                            future.set_exception(error)
                    continue
                for (_, future), result in zip(live, results, strict=True):
                    if not future.done():
                        future.set_result(result)


# ------------------------------------------------------------------------------------------------
# The model
# ------------------------------------------------------------------------------------------------


class _ChosenTokenLogProbs(LogitsProcessor):
    """Records log p(chosen token) during ``generate`` in O(batch x vocab) memory.

    At step t a logits processor sees the scores of step t and, as the last column of ``input_ids``, the
    token chosen at step t-1; so it keeps one step's log-softmax and gathers from it one step later.
    It runs before the row sampler's temperature/top-k/top-p, so the recorded value is
    log_softmax(logits / T), what verl's actor recomputes from the rollout (it divides by T, no truncation).
    """

    def __init__(self, temperature: float) -> None:
        self._temperature = temperature
        self._previous: torch.Tensor | None = None
        self._steps: list[torch.Tensor] = []

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        if self._previous is not None:
            self._gather(input_ids[:, -1])
        self._previous = torch.log_softmax(scores.float() / self._temperature, dim=-1)
        return scores

    def _gather(self, tokens: torch.Tensor) -> None:
        assert self._previous is not None
        self._steps.append(self._previous.gather(-1, tokens.unsqueeze(-1)).squeeze(-1))

    def finish(self, last_tokens: torch.Tensor) -> torch.Tensor:
        """(batch, steps) log-probs, given the tokens chosen at the final step."""
        self._gather(last_tokens)
        self._previous = None
        return torch.stack(self._steps, dim=1)


class _StopWhenSet(StoppingCriteria):
    """Ends the running ``generate`` at the next step once ``abort_all_requests`` sets the flag.

    ``fired`` remembers that it did, even if generation is resumed (flag cleared) before the batch's
    results are split, so the cut-short rows are still reported as aborted.
    """

    def __init__(self, flag: threading.Event) -> None:
        self._flag = flag
        self.fired = False

    def __call__(
        self, input_ids: torch.LongTensor, scores: torch.FloatTensor, **kwargs: Any
    ) -> torch.BoolTensor:
        self.fired = self.fired or self._flag.is_set()
        return torch.full((input_ids.shape[0],), self.fired, dtype=torch.bool)


class _RowSeededSampler(LogitsProcessor):
    """Samples every row's next token from that row's own ``torch.Generator``, then leaves it the only
    finite score, so ``generate`` runs greedy and picks it.

    A row's tokens then depend on its seed and its own logits only, not on which other requests share
    its batch (the batch's make-up depends on arrival times). Temperature, top-k and top-p are applied
    with transformers' own warpers, in the order transformers' sampling applies them.
    """

    def __init__(self, key: SamplingKey, generators: Sequence[torch.Generator]) -> None:
        self._warpers: list[LogitsProcessor] = [TemperatureLogitsWarper(key.temperature)]
        if key.top_k > 0:
            self._warpers.append(TopKLogitsWarper(key.top_k))
        if key.top_p < 1.0:
            self._warpers.append(TopPLogitsWarper(key.top_p))
        self._generators = list(generators)

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        for warper in self._warpers:
            scores = warper(input_ids, scores)
        probs = torch.softmax(scores.float(), dim=-1)
        chosen = torch.cat(
            [torch.multinomial(probs[row], 1, generator=gen) for row, gen in enumerate(self._generators)]
        )
        only_chosen = torch.full_like(scores, float("-inf"))
        only_chosen.scatter_(1, chosen.unsqueeze(1), 0.0)
        return only_chosen


def _row_generators(requests: Sequence[GenerationRequest]) -> list[torch.Generator]:
    """One generator per request: its seed, or one drawn from torch's global RNG when it has none."""
    generators = []
    for request in requests:
        seed = request.seed if request.seed is not None else int(torch.randint(0, 2**62, (1,)).item())
        generators.append(torch.Generator().manual_seed(seed))
    return generators


class HFGenerationEngine:
    """A HF causal LM serving concurrent token-in/token-out requests as batched ``generate`` calls.

    Batches run one at a time in a worker thread, so the event loop keeps accepting requests meanwhile;
    weight updates take the same lock, so a batch never sees half-loaded weights.
    """

    def __init__(
        self,
        model: PreTrainedModel,
        *,
        eos_token_ids: Sequence[int],
        pad_token_id: int,
        prompt_length: int,
        response_length: int,
        max_batch_size: int = 256,
        batch_quiet_s: float = 0.05,
        batch_max_wait_s: float = 0.5,
        vision: VisionSettings | None = None,
    ) -> None:
        self.model = model.eval()
        self.vision = vision
        self.eos_token_ids = tuple(dict.fromkeys(int(t) for t in eos_token_ids))
        self.pad_token_id = int(pad_token_id)
        self.prompt_length = prompt_length
        self.response_length = response_length
        # transformers fills every generation setting a call leaves unset from model.generation_config;
        # a checkpoint's generation_config.json (e.g. Qwen's top_k=20, temperature=0.7) must not change
        # what verl asked for, so start from a neutral one.
        model.generation_config = GenerationConfig(
            eos_token_id=list(self.eos_token_ids), pad_token_id=self.pad_token_id
        )
        self._abort = threading.Event()
        self._model_lock = asyncio.Lock()
        self._batcher = RequestBatcher(
            self._run_batch, max_batch_size=max_batch_size, quiet_s=batch_quiet_s, max_wait_s=batch_max_wait_s
        )

    def default_max_tokens(self, prompt_length: int) -> int:
        """vLLM server's default: the response length, within the prompt+response budget."""
        return min(self.response_length, self.prompt_length + self.response_length - prompt_length)

    async def generate(
        self,
        prompt_ids: Sequence[int],
        sampling_params: Mapping[str, Any],
        seed: int | None = None,
        images: Sequence[Any] = (),
    ) -> SequenceResult:
        """Generate for one prompt; concurrent calls are batched together.

        ``seed`` (see ``request_seed``) defaults to the sampling params' own ``seed``; ``images`` are
        the prompt's images in order (its ids already hold their expanded image tokens).
        """
        if images and self.vision is None:
            raise ValueError("hf rollout: this policy is a text model and cannot take images")
        prompt = tuple(normalize_token_ids(prompt_ids))
        if not prompt:
            raise ValueError("hf rollout: empty prompt")
        key, max_new_tokens, want_log_probs = parse_sampling_params(
            sampling_params, self.default_max_tokens(len(prompt))
        )
        if seed is None and sampling_params.get("seed") is not None:
            seed = int(sampling_params["seed"])
        request = GenerationRequest(
            prompt, key, max_new_tokens, want_log_probs, seed if key.do_sample else None, tuple(images)
        )
        result = await self._batcher.submit(request)
        return result if want_log_probs else dataclasses.replace(result, log_probs=None)

    def abort(self) -> int:
        """Stop the running batch at its next step and answer queued requests as aborted."""
        self._abort.set()
        return self._batcher.abort_pending()

    def resume(self) -> None:
        self._abort.clear()

    async def load_weights(self, named_tensors: Mapping[str, torch.Tensor]) -> list[str]:
        """Copy tensors into the model by state-dict name; return the names (a bucket may be partial)."""
        async with self._model_lock:
            return await asyncio.to_thread(self._copy_weights, named_tensors)

    def missing_weights(self, updated: Iterable[str]) -> list[str]:
        """State-dict entries not covered by ``updated`` (tied weights count as covered via their storage)."""
        state = self.model.state_dict()
        covered = {state[name].data_ptr() for name in updated if name in state}
        return [name for name, tensor in state.items() if tensor.data_ptr() not in covered]

    def _copy_weights(self, named_tensors: Mapping[str, torch.Tensor]) -> list[str]:
        state = self.model.state_dict()
        unknown = [name for name in named_tensors if name not in state]
        if unknown:
            raise KeyError(
                f"hf rollout: weights the model does not have: {unknown[:5]} ({len(unknown)} in all)"
            )
        with torch.no_grad():
            for name, tensor in named_tensors.items():
                state[name].copy_(tensor)
        return list(named_tensors)

    async def _run_batch(self, requests: list[GenerationRequest]) -> list[SequenceResult]:
        async with self._model_lock:
            return await asyncio.to_thread(self._generate_batch, requests)

    def _generate_batch(self, requests: list[GenerationRequest]) -> list[SequenceResult]:
        key = requests[0].key
        limits = [request.max_new_tokens for request in requests]
        stop_token_ids = (*self.eos_token_ids, *key.stop_token_ids)
        input_ids, attention_mask = left_pad([request.prompt_ids for request in requests], self.pad_token_id)
        recorder = None
        if any(request.want_log_probs for request in requests):
            recorder = _ChosenTokenLogProbs(key.temperature if key.do_sample else 1.0)
        processors: list[LogitsProcessor] = [recorder] if recorder is not None else []
        if key.do_sample:  # sampled row by row (see _RowSeededSampler); generate itself runs greedy
            processors.append(_RowSeededSampler(key, _row_generators(requests)))
        config = GenerationConfig(
            max_new_tokens=max(limits),
            eos_token_id=list(stop_token_ids),
            pad_token_id=self.pad_token_id,
            repetition_penalty=key.repetition_penalty,
            do_sample=False,
            suppress_tokens=list(self.vision.suppressed_token_ids) if self.vision is not None else None,
        )
        vision_inputs = {}
        if self.vision is not None:
            vision_inputs = batch_vision_inputs(self.vision, [request.images for request in requests], input_ids)
        stop_on_abort = _StopWhenSet(self._abort)
        start = time.perf_counter()
        with torch.inference_mode():
            sequences = self.model.generate(
                input_ids=input_ids,
                attention_mask=attention_mask,
                **vision_inputs,
                generation_config=config,
                logits_processor=LogitsProcessorList(processors),
                stopping_criteria=StoppingCriteriaList([stop_on_abort]),
            )
        new_tokens = sequences[:, input_ids.shape[1] :]
        token_log_probs = recorder.finish(new_tokens[:, -1]) if recorder is not None else None
        results = split_generations(new_tokens, token_log_probs, stop_token_ids, limits, stop_on_abort.fired)
        logger.info(
            "hf rollout: one generate call for %d requests (prompt width %d, <=%d new tokens, %s) in %.2fs",
            len(requests),
            input_ids.shape[1],
            max(limits),
            "sampling" if key.do_sample else "greedy",
            time.perf_counter() - start,
        )
        return results


