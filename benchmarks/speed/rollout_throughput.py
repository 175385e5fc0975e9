"""The ``hf`` rollout server's throughput ÷ one batched ``generate`` over the same prompts (target >= 0.8).

The server (``hpt.cpu.hf_rollout.HFRolloutServer``) runs as a Ray actor, as in training, and gets
prompts x samples concurrent requests, one per sample, through the client verl's agent loop uses
(``LLMServerClient``: a Ray call to verl's load balancer, then one to the server), with the sampling
settings the agent loop sends (the CPU overlay's temperature, top-p/k and log-probs); it batches them
into ``generate`` calls.
The limit it is held against is one direct ``model.generate`` over the same left-padded prompts in
this process, with the same settings, EOS, log-probs and torch thread count. A third variant sends the
same requests to the server's engine in this process (no Ray), which splits the server's gap into
request batching and Ray transport. Each round gives all three the same sampling seed (the only
addition to what the agent loop sends), so when the requests run as one batch in the order sent they
generate the very same tokens; the result says in how many rounds each matched the direct call.
Throughput counts the tokens actually generated (up to and including EOS). Rounds alternate after
one untimed warm-up round; medians are over the rounds.
Usage: ``python -m benchmarks.speed.rollout_throughput [--prompts 16 --samples 4 --repeats 20]``.
"""

import verl  # noqa: F401  (first: lets verl load hpt's plugin before the imports below)
import asyncio
import dataclasses
import time
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any
from uuid import uuid4

import pandas as pd
import ray
import torch
from hydra import compose, initialize_config_module
from omegaconf import DictConfig
from transformers import AutoModelForCausalLM, AutoTokenizer
from verl.utils.config import omega_conf_to_dataclass
from verl.workers.config import HFModelConfig, RolloutConfig
from verl.workers.rollout.llm_server import LLMServerClient
from verl.workers.rollout.router import get_router_handle

from benchmarks.speed.common import emit, part_parser, summary
from benchmarks.speed.step_time import Shape, build_tiny
from hpt.cpu.hf_generation import HFGenerationEngine, parse_sampling_params, split_generations
from hpt.cpu.hf_rollout import HFRolloutServer, server_actor_name
from hpt.padding import left_pad
from hpt.generation import prompt_ids

TARGET_RATIO = 0.8
SERVER, ENGINE, DIRECT = "server", "engine_without_ray", "direct_generate"
Request = Callable[[list[int], dict[str, Any]], Awaitable[Any]]


@dataclasses.dataclass(frozen=True)
class Setup:
    """The CPU overlay's config for one shape, its rollout and model parts, and the agent loop's sampling dict."""

    config: DictConfig
    rollout: RolloutConfig
    model: HFModelConfig
    sampling: dict[str, Any]


def rollout_setup(tiny_dir: Path, shape: Shape, threads: int) -> Setup:
    """Compose the CPU overlay for ``shape`` with ``threads`` torch threads in the server."""
    with initialize_config_module("hpt.config", version_base=None):
        cfg = compose("hpt_trainer_cpu", overrides=[
            f"actor_rollout_ref.model.path={tiny_dir / 'model'}", *shape.overrides(),
            f"actor_rollout_ref.rollout.engine_kwargs.hf.num_threads={threads}",
        ])
    rollout = omega_conf_to_dataclass(cfg.actor_rollout_ref.rollout)
    sampling = {"temperature": rollout.temperature, "top_p": rollout.top_p, "top_k": rollout.top_k,
                "repetition_penalty": 1.0, "logprobs": rollout.calculate_log_probs}
    return Setup(cfg, rollout, omega_conf_to_dataclass(cfg.actor_rollout_ref.model, dataclass_type=HFModelConfig),
                 sampling)


def request_prompts(tiny_dir: Path, shape: Shape) -> list[list[int]]:
    """The first ``shape.prompts`` training prompts, templated as the agent loop does, each ``samples`` times."""
    tokenizer = AutoTokenizer.from_pretrained(tiny_dir / "model")
    rows = pd.read_parquet(tiny_dir / "data" / "train.parquet").head(shape.prompts)
    prompts = [prompt_ids(tokenizer, [dict(message) for message in row]) for row in rows["prompt"]]
    return [prompt for prompt in prompts for _ in range(shape.samples)]


async def concurrent_round(request: Request, prompts: Sequence[list[int]], sampling: dict) -> tuple[float, int]:
    """Seconds and generated tokens for all requests sent at once, one per sample."""
    start = time.perf_counter()
    outputs = await asyncio.gather(*(request(prompt, sampling) for prompt in prompts))
    return time.perf_counter() - start, sum(len(output.token_ids) for output in outputs)


def direct_round(engine: HFGenerationEngine, prompts: Sequence[list[int]], sampling: dict) -> tuple[float, int]:
    """Seconds and generated tokens of one ``generate`` over all prompts (log-probs of the chosen tokens too),
    with the engine's model, EOS and padding but none of its request handling."""
    key, max_new_tokens, want_log_probs = parse_sampling_params(sampling, engine.response_length)
    input_ids, attention_mask = left_pad(prompts, engine.pad_token_id)
    settings = ({"do_sample": True, "temperature": key.temperature, "top_p": key.top_p, "top_k": key.top_k}
                if key.do_sample else {"do_sample": False})
    start = time.perf_counter()
    with torch.inference_mode(), torch.random.fork_rng(devices=[]):
        if key.seed is not None:
            torch.manual_seed(key.seed)
        out = engine.model.generate(
            input_ids=input_ids, attention_mask=attention_mask, max_new_tokens=max_new_tokens,
            eos_token_id=list(engine.eos_token_ids), pad_token_id=engine.pad_token_id,
            return_dict_in_generate=True, output_logits=want_log_probs, **settings)
        new_tokens = out.sequences[:, input_ids.shape[1]:]
        log_probs = None
        if want_log_probs:
            scaled = torch.stack(out.logits, dim=1).float() / (key.temperature if key.do_sample else 1.0)
            log_probs = scaled.log_softmax(-1).gather(-1, new_tokens.unsqueeze(-1)).squeeze(-1)
    seconds = time.perf_counter() - start
    results = split_generations(new_tokens, log_probs, engine.eos_token_ids, [max_new_tokens] * len(prompts))
    return seconds, sum(len(result.token_ids) for result in results)


def start_server(setup: Setup) -> Any:
    """A local Ray and the rollout server actor, with the options ``HFRolloutReplica`` gives it; the
    actor process runs on verl's CPU platform, as the overlay's Ray workers do."""
    ray.init(address="local", include_dashboard=False, log_to_driver=False, runtime_env={
        "env_vars": {"VERL_PLATFORM": "cpu", "TOKENIZERS_PARALLELISM": "false"}})
    server = ray.remote(HFRolloutServer).options(num_cpus=0, max_concurrency=1000).remote(
        config=setup.rollout, model_config=setup.model, replica_rank=0)
    ray.get(server.ready.remote())
    return server


async def local_engine(server: Any, setup: Setup) -> HFGenerationEngine:
    """An engine in this process like the server's: same weights file, EOS and padding, default batching."""
    eos_token_ids, pad_token_id = await server.__ray_call__.remote(
        lambda actor: (actor.engine.eos_token_ids, actor.engine.pad_token_id))
    model = AutoModelForCausalLM.from_pretrained(setup.model.local_path, dtype=torch.float32,
                                                 attn_implementation="sdpa")
    return HFGenerationEngine(model, eos_token_ids=eos_token_ids, pad_token_id=pad_token_id,
                              prompt_length=setup.rollout.prompt_length, response_length=setup.rollout.response_length,
                              max_batch_size=setup.rollout.max_num_seqs)


async def alternate(server: Any, setup: Setup, prompts: Sequence[list[int]], repeats: int) -> dict[str, list[dict]]:
    """``repeats`` timed rounds of server, engine and direct generation (after an untimed one); seed = round."""
    engine = await local_engine(server, setup)
    client = LLMServerClient(setup.config, load_balancer_handle=get_router_handle({server_actor_name(0): server}))
    requests: dict[str, Request] = {
        SERVER: lambda prompt, params: client.generate(uuid4().hex, prompt_ids=prompt, sampling_params=params),
        ENGINE: engine.generate,
    }
    rounds: dict[str, list[dict[str, float]]] = {SERVER: [], ENGINE: [], DIRECT: []}
    for round_index in range(repeats + 1):
        seeded = {**setup.sampling, "seed": round_index}
        timed = {name: await concurrent_round(request, prompts, seeded) for name, request in requests.items()}
        timed[DIRECT] = direct_round(engine, prompts, seeded)
        for name, (seconds, tokens) in timed.items():
            if round_index:
                rounds[name].append({"seconds": seconds, "tokens": tokens, "tokens_per_s": tokens / seconds})
    return rounds


def measure(tiny_dir: Path, shape: Shape, repeats: int, threads: int) -> dict:
    """Tokens/s of the server, its engine without Ray and one direct ``generate``; medians and ratios."""
    setup = rollout_setup(tiny_dir, shape, threads)
    previous_threads = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        server = start_server(setup)
        rounds = asyncio.run(alternate(server, setup, request_prompts(tiny_dir, shape), repeats))
    finally:
        ray.shutdown()
        torch.set_num_threads(previous_threads)
    medians = {name: {field: summary([r[field] for r in values])["median"] for field in values[0]}
               for name, values in rounds.items()}
    direct = medians[DIRECT]["tokens_per_s"]
    same_tokens = {name: sum(r["tokens"] == d["tokens"] for r, d in zip(rounds[name], rounds[DIRECT], strict=True))
                   for name in (SERVER, ENGINE)}
    return {
        "shape": {"prompts": shape.prompts, "samples": shape.samples, "max_new_tokens": setup.rollout.response_length},
        "sampling": setup.sampling, "torch_threads": threads, "repeats": repeats, "rounds": rounds,
        "median": medians, "rounds_with_the_direct_tokens": same_tokens,
        "ratio_tokens_per_s": medians[SERVER]["tokens_per_s"] / direct,
        "ratio_engine_without_ray": medians[ENGINE]["tokens_per_s"] / direct,
        "target_ratio": TARGET_RATIO,
    }


def main(argv: list[str] | None = None) -> dict:
    parser = part_parser(__doc__, prompts=16, samples=4, response_length=32, repeats=20)
    parser.add_argument("--threads", type=int, default=1, help="torch threads of all three (the CPU overlay's: 1)")
    args = parser.parse_args(argv)
    shape = Shape(args.prompts, args.samples, args.response_length)
    return emit("rollout_throughput", measure(build_tiny(args.tiny_dir), shape, args.repeats, args.threads), args.out)


if __name__ == "__main__":
    main()
