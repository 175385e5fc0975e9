"""The hf rollout's request batching, without Ray: a tiny random Qwen2 built here, token ids only.

What matters to training: concurrent per-sample requests become one ``generate`` call, each request gets
its own tokens back, batching (left padding) does not change greedy results, responses end at EOS, and
log-probs line up with the tokens and are what a forward pass gives.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator, Sequence
from typing import Any

import pytest
import torch
from transformers import Qwen2Config, Qwen2ForCausalLM

from hpt.cpu.hf_generation import (
    GenerationRequest,
    HFGenerationEngine,
    RequestBatcher,
    SamplingKey,
    SequenceResult,
    group_by_key,
    parse_sampling_params,
    split_generations,
)
from hpt.padding import left_pad

VOCAB = 64
PAD = 0
NO_EOS = 62  # an id the tiny model's greedy continuations of PROMPTS never contain
PROMPTS = [[5, 9, 13], [7, 3, 22, 30, 11, 4, 19], [40], [12, 12, 8, 33, 2], [6, 17, 25, 31], [9, 1]]
GREEDY = {"temperature": 0.0, "top_p": 1.0, "top_k": -1, "logprobs": True, "max_tokens": 8}


@pytest.fixture(scope="module", autouse=True)
def one_torch_thread() -> Iterator[None]:
    """Tiny matmuls run fastest and reproducibly on one thread, whatever else the host is running."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def build_model(seed: int) -> Qwen2ForCausalLM:
    config = Qwen2Config(
        vocab_size=VOCAB,
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=64,
        # untied: with tied embeddings a tiny random model just repeats the last prompt token, which would
        # hide padding and position bugs; untied, its greedy continuations depend on the whole context
        tie_word_embeddings=False,
        attn_implementation="sdpa",
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return Qwen2ForCausalLM(config).float().eval()


@pytest.fixture(scope="module")
def model() -> Qwen2ForCausalLM:
    return build_model(seed=0)


def make_engine(model: Qwen2ForCausalLM, eos: int = NO_EOS) -> HFGenerationEngine:
    return HFGenerationEngine(
        model, eos_token_ids=[eos], pad_token_id=PAD, prompt_length=16, response_length=8
    )


def count_generate_calls(model: Qwen2ForCausalLM, monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Wrap ``model.generate``; the returned list gets the batch size of every call."""
    batch_sizes: list[int] = []
    original = model.generate

    def counting_generate(*args: Any, **kwargs: Any) -> Any:
        batch_sizes.append(kwargs["input_ids"].shape[0])
        return original(*args, **kwargs)

    monkeypatch.setattr(model, "generate", counting_generate)
    return batch_sizes


async def generate_all(
    engine: HFGenerationEngine, prompts: Sequence[Sequence[int]], params: dict[str, Any]
) -> list[SequenceResult]:
    return list(await asyncio.gather(*(engine.generate(prompt, params) for prompt in prompts)))


async def generate_one_by_one(
    engine: HFGenerationEngine, prompts: Sequence[Sequence[int]], params: dict[str, Any]
) -> list[SequenceResult]:
    return [await engine.generate(prompt, params) for prompt in prompts]


def test_concurrent_requests_run_as_one_generate_call(model, monkeypatch) -> None:
    batch_sizes = count_generate_calls(model, monkeypatch)
    results = asyncio.run(generate_all(make_engine(model), PROMPTS, GREEDY))
    assert batch_sizes == [len(PROMPTS)]
    assert len(results) == len(PROMPTS)
    assert all(len(result.token_ids) == 8 and result.stop_reason == "completed" for result in results)
    assert all(len(result.log_probs) == 8 and max(result.log_probs) <= 0.0 for result in results)


def test_batched_greedy_equals_each_prompt_alone(model, monkeypatch) -> None:
    batched = asyncio.run(generate_all(make_engine(model), PROMPTS, GREEDY))
    batch_sizes = count_generate_calls(model, monkeypatch)
    alone = asyncio.run(generate_one_by_one(make_engine(model), PROMPTS, GREEDY))
    assert batch_sizes == [1] * len(PROMPTS)
    assert [result.token_ids for result in batched] == [result.token_ids for result in alone]
    for batched_result, alone_result in zip(batched, alone, strict=True):
        torch.testing.assert_close(
            torch.tensor(batched_result.log_probs), torch.tensor(alone_result.log_probs), atol=1e-4, rtol=0
        )
    # different prompts, different continuations: each request really got its own row back
    assert len({tuple(result.token_ids) for result in batched}) > 1


def test_response_ends_at_first_eos_inclusive(model) -> None:
    reference = asyncio.run(generate_all(make_engine(model), PROMPTS, GREEDY))
    eos = reference[1].token_ids[3]
    assert eos != NO_EOS
    results = asyncio.run(generate_all(make_engine(model, eos=eos), PROMPTS, GREEDY))
    for full, result in zip(reference, results, strict=True):
        expected = (
            full.token_ids[: full.token_ids.index(eos) + 1] if eos in full.token_ids else full.token_ids
        )
        assert result.token_ids == expected
        assert len(result.log_probs) == len(result.token_ids)
    assert results[1].token_ids[-1] == eos and len(results[1].token_ids) <= 4


def test_log_probs_match_a_forward_pass_at_the_sampling_temperature(model) -> None:
    params = {"temperature": 0.7, "top_p": 0.9, "top_k": 10, "logprobs": True, "max_tokens": 8, "seed": 3}
    prompt = PROMPTS[1]
    (result,) = asyncio.run(generate_all(make_engine(model), [prompt], params))
    assert len(result.log_probs) == len(result.token_ids) >= 1
    assert all(value <= 0.0 for value in result.log_probs)
    with torch.no_grad():
        logits = model(torch.tensor([prompt + result.token_ids])).logits[0].float()
    steps = logits[len(prompt) - 1 : -1] / 0.7
    expected = torch.log_softmax(steps, dim=-1).gather(-1, torch.tensor(result.token_ids)[:, None])[:, 0]
    torch.testing.assert_close(torch.tensor(result.log_probs), expected, atol=1e-4, rtol=0)


def test_seeded_sampling_is_reproducible_and_log_probs_are_optional(model) -> None:
    params = {"temperature": 1.0, "top_p": 1.0, "top_k": -1, "max_tokens": 8, "seed": 11}
    first = asyncio.run(generate_all(make_engine(model), PROMPTS, params))
    second = asyncio.run(generate_all(make_engine(model), PROMPTS, params))
    assert [r.token_ids for r in first] == [r.token_ids for r in second]
    assert all(result.log_probs is None for result in first)


def test_per_request_max_tokens_within_one_batch(model, monkeypatch) -> None:
    batch_sizes = count_generate_calls(model, monkeypatch)

    async def run() -> list[SequenceResult]:
        engine = make_engine(model)
        return list(
            await asyncio.gather(
                engine.generate(PROMPTS[0], {**GREEDY, "max_tokens": 2}),
                engine.generate(PROMPTS[1], {**GREEDY, "max_tokens": 5}),
            )
        )

    short, longer = asyncio.run(run())
    assert batch_sizes == [2]
    assert (len(short.token_ids), len(longer.token_ids)) == (2, 5)
    assert (len(short.log_probs), len(longer.log_probs)) == (2, 5)


def test_abort_cuts_the_running_batch_and_answers_queued_requests(model, monkeypatch) -> None:
    started, release = threading.Event(), threading.Event()
    original = model.generate

    def gated_generate(*args: Any, **kwargs: Any) -> Any:
        started.set()
        release.wait(timeout=10)
        return original(*args, **kwargs)

    monkeypatch.setattr(model, "generate", gated_generate)

    async def run() -> tuple[SequenceResult, SequenceResult, SequenceResult]:
        engine = make_engine(model)
        running = asyncio.create_task(engine.generate(PROMPTS[0], GREEDY))
        while not started.is_set():
            await asyncio.sleep(0.01)
        queued = asyncio.create_task(engine.generate(PROMPTS[1], GREEDY))
        await asyncio.sleep(0)
        engine.abort()
        release.set()
        cut, dropped = await running, await queued
        engine.resume()
        return cut, dropped, await engine.generate(PROMPTS[0], GREEDY)

    cut, dropped, after = asyncio.run(run())
    assert (cut.stop_reason, len(cut.token_ids), len(cut.log_probs)) == ("aborted", 1, 1)
    assert (dropped.stop_reason, dropped.token_ids) == ("aborted", [])
    assert (after.stop_reason, len(after.token_ids)) == ("completed", 8)


def test_weight_update_changes_generation_and_reports_stale_tensors(model) -> None:
    other = build_model(seed=1)
    engine = make_engine(build_model(seed=0))
    named = dict(other.state_dict())
    partial = {name: tensor for name, tensor in named.items() if "layers.1.mlp" not in name}

    async def run() -> tuple[list[str], list[str], list[SequenceResult]]:
        missing_after_partial = engine.missing_weights(await engine.load_weights(partial))
        missing_after_all = engine.missing_weights(await engine.load_weights(named))
        return missing_after_partial, missing_after_all, await generate_all(engine, PROMPTS, GREEDY)

    missing_partial, missing_all, updated = asyncio.run(run())
    assert sorted(missing_partial) == sorted(set(named) - set(partial)) and missing_all == []
    expected = asyncio.run(generate_all(make_engine(other), PROMPTS, GREEDY))
    before = asyncio.run(generate_all(make_engine(model), PROMPTS, GREEDY))
    assert [r.token_ids for r in updated] == [r.token_ids for r in expected]
    assert [r.token_ids for r in updated] != [r.token_ids for r in before]
    with pytest.raises(KeyError, match="does not have"):
        asyncio.run(engine.load_weights({"not.a.weight": torch.zeros(1)}))


# ------------------------------------------------------------------------------------------------
# the pure pieces
# ------------------------------------------------------------------------------------------------


def test_parse_sampling_params_normalises_greedy_and_reads_limits() -> None:
    key, max_new, want = parse_sampling_params({"temperature": 0, "top_k": 5, "top_p": 0.3, "seed": 1}, 32)
    assert key == SamplingKey(do_sample=False) and max_new == 32 and want is False
    key, max_new, want = parse_sampling_params({"temperature": 1.0, "do_sample": False, "max_tokens": 4}, 32)
    assert key == SamplingKey(do_sample=False) and max_new == 4
    key, max_new, want = parse_sampling_params(
        {
            "temperature": 0.5,
            "top_k": -1,
            "top_p": 0.9,
            "logprobs": 0,
            "max_new_tokens": 0,
            "stop_token_ids": [7],
        },
        32,
    )
    assert key == SamplingKey(do_sample=True, temperature=0.5, top_p=0.9, top_k=0, stop_token_ids=(7,))
    assert max_new == 1 and want is False


def test_left_pad_right_aligns_prompts() -> None:
    input_ids, attention_mask = left_pad([[4, 5, 6], [7]], pad_token_id=PAD)
    assert input_ids.tolist() == [[4, 5, 6], [PAD, PAD, 7]]
    assert attention_mask.tolist() == [[1, 1, 1], [0, 0, 1]]


def test_group_by_key_keeps_order_and_caps_group_size() -> None:
    items = ["a1", "b1", "a2", "a3", "b2"]
    assert group_by_key(items, key=lambda item: item[0], max_group_size=2) == [
        ["a1", "a2"],
        ["a3"],
        ["b1", "b2"],
    ]


def test_split_generations_cuts_at_stop_and_limit_and_drops_padding() -> None:
    eos = 9
    new_tokens = torch.tensor([[3, eos, PAD, PAD], [4, 4, 4, 4], [5, 6, eos, PAD], [8, 8, 8, 8]])
    log_probs = -torch.arange(16, dtype=torch.float).reshape(4, 4)
    results = split_generations(new_tokens, log_probs, [eos], limits=[4, 4, 2, 3])
    assert [r.token_ids for r in results] == [[3, eos], [4, 4, 4, 4], [5, 6], [8, 8, 8]]
    assert results[0].log_probs == [0.0, -1.0] and results[3].log_probs == [-12.0, -13.0, -14.0]
    assert {r.stop_reason for r in results} == {"completed"}
    aborted = split_generations(new_tokens[:, :2], None, [eos], limits=[4, 4, 4, 4], aborted=True)
    assert [r.stop_reason for r in aborted] == ["completed", "aborted", "aborted", "aborted"]
    assert aborted[0].log_probs is None


def test_batcher_runs_one_call_per_sampling_key_and_isolates_failures() -> None:
    calls: list[list[tuple[int, ...]]] = []

    async def run_batch(requests: list[GenerationRequest]) -> list[SequenceResult]:
        calls.append([request.prompt_ids for request in requests])
        if requests[0].key.temperature == 0.5:
            raise RuntimeError("boom")
        return [SequenceResult(list(request.prompt_ids), None, "completed") for request in requests]

    greedy, failing = SamplingKey(do_sample=False), SamplingKey(do_sample=True, temperature=0.5)

    async def run() -> list[Any]:
        batcher = RequestBatcher(run_batch, max_batch_size=8)
        requests = [GenerationRequest((i,), greedy if i % 2 else failing, 4) for i in range(5)]
        return await asyncio.gather(*(batcher.submit(r) for r in requests), return_exceptions=True)

    results = asyncio.run(run())
    assert sorted(calls) == [[(0,), (2,), (4,)], [(1,), (3,)]]
    assert [r.token_ids for r in results[1::2]] == [[1], [3]]
    assert all(isinstance(r, RuntimeError) for r in results[0::2])


def test_batcher_answers_queued_requests_as_aborted() -> None:
    async def never_called(requests: list[GenerationRequest]) -> list[SequenceResult]:
        raise AssertionError("aborted requests must not run")

    async def run() -> list[SequenceResult]:
        batcher = RequestBatcher(never_called, max_batch_size=8, quiet_s=0.05)
        tasks = [
            asyncio.create_task(batcher.submit(GenerationRequest((i,), SamplingKey(False), 4)))
            for i in range(3)
        ]
        await asyncio.sleep(0)
        assert batcher.abort_pending() == 3
        return list(await asyncio.gather(*tasks))

    assert [r.stop_reason for r in asyncio.run(run())] == ["aborted"] * 3


def test_left_pad_to_a_fixed_width_refuses_a_longer_prompt() -> None:
    input_ids, attention_mask = left_pad([[4, 5]], pad_token_id=PAD, width=4, dtype=torch.int32)
    assert input_ids.tolist() == [[PAD, PAD, 4, 5]] and attention_mask.tolist() == [[0, 0, 1, 1]]
    assert input_ids.dtype == torch.int32
    with pytest.raises(ValueError, match="more than the padded width 1"):
        left_pad([[4, 5]], pad_token_id=PAD, width=1)


# ------------------------------------------------------------------------------------------------
# seeded sampling: the same seed gives the same rollouts, whatever the batch
# ------------------------------------------------------------------------------------------------

SAMPLED = {"temperature": 1.0, "top_p": 1.0, "top_k": -1, "max_tokens": 8}


async def generate_seeded(engine: HFGenerationEngine, requests: Sequence[tuple[Sequence[int], int]]) -> list:
    return list(await asyncio.gather(*(engine.generate(p, SAMPLED, seed) for p, seed in requests)))


def test_a_seeded_request_samples_the_same_tokens_alone_or_in_any_batch(model) -> None:
    requests = [(prompt, 100 + i) for i, prompt in enumerate(PROMPTS)]
    together = asyncio.run(generate_seeded(make_engine(model), requests))
    alone = [asyncio.run(generate_seeded(make_engine(model), [request]))[0] for request in requests]
    reversed_batch = asyncio.run(generate_seeded(make_engine(model), requests[::-1]))[::-1]
    assert [r.token_ids for r in together] == [r.token_ids for r in alone] == [r.token_ids for r in reversed_batch]
    assert len({tuple(r.token_ids) for r in together}) > 1


def test_identical_prompts_with_different_seeds_sample_different_tokens(model) -> None:
    results = asyncio.run(generate_seeded(make_engine(model), [(PROMPTS[1], seed) for seed in range(8)]))
    assert len({tuple(r.token_ids) for r in results}) > 4  # random tiny model: near-uniform over 64 tokens


def test_row_sampler_draws_from_the_warped_distribution() -> None:
    from hpt.cpu.hf_generation import _RowSeededSampler

    logits = torch.log(torch.tensor([[0.5, 0.3, 0.15, 0.05]]))

    def sample(key: SamplingKey, seed: int) -> torch.Tensor:
        sampler = _RowSeededSampler(key, [torch.Generator().manual_seed(seed)])
        return sampler(torch.zeros(1, 1, dtype=torch.long), logits.clone())

    draws = 4000
    counts = torch.zeros(4)
    for seed in range(draws):
        out = sample(SamplingKey(do_sample=True), seed)
        assert torch.isfinite(out).sum() == 1
        counts[out.argmax()] += 1
    torch.testing.assert_close(counts / draws, torch.tensor([0.5, 0.3, 0.15, 0.05]), atol=0.03, rtol=0)
    assert {int(sample(SamplingKey(do_sample=True, top_k=2), s).argmax()) for s in range(200)} == {0, 1}


def test_request_seed_comes_from_rollout_seed_step_and_request_id() -> None:
    from hpt.cpu.hf_generation import request_seed

    seed = request_seed(SAMPLED, 42, 3, "det-5")
    assert seed == request_seed(SAMPLED, 42, 3, "det-5") and 0 <= seed < 2**63
    others = {request_seed(SAMPLED, *changed) for changed in ((43, 3, "det-5"), (42, 4, "det-5"), (42, 3, "det-6"))}
    assert seed not in others and len(others) == 3
    assert request_seed({**SAMPLED, "seed": 7}, 42, 3, "det-5") == 7  # the request's own seed wins (vLLM)
    assert request_seed(GREEDY, 42, 3, "det-5") is None
    assert request_seed(SAMPLED, 42, 3, None) is None
