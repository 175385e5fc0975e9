"""Cost of hpt's hybrid loss against verl's vanilla policy loss on the same tensors (target <= 1.3x).

Both losses run forward + backward on one micro-batch shaped like verl's actor update (no-padding
log-probs, padded masks), with the same rows: a quarter of them are demonstrations. verl's
``ppo_loss`` trains every row with the clipped surrogate; hpt's loss splits the rows into the RL
term and the SFT / off-policy terms with their weights, for every method (GRPO + SFT as in HPT switch,
LUFFY's shaped loss, CHORD, CHORD-phi, SRFT) under both ``loss_normalization`` choices. The time of
the model forward/backward is not included (it is the same for both), so this is the loss's own
overhead: an upper bound on what hpt adds to an update.
Usage: ``python -m benchmarks.speed.loss_overhead [--rows 64 --length 1024]``.
"""

import verl  # noqa: F401  (first: lets verl load hpt's plugin before the imports below)
import time

import torch
from hydra import compose, initialize_config_module
from verl import DataProto
from verl.utils import tensordict_utils as tu
from verl.utils.config import omega_conf_to_dataclass
from verl.workers.utils.losses import ppo_loss
from verl.workers.utils.padding import left_right_2_no_padding

from benchmarks.speed.common import emit, part_parser, summary
from hpt.core.loss import term_counts, term_masks
from hpt.trainer.actor_loss import hpt_actor_loss
from hpt.trainer.engine import COUNT_KEYS

TARGET_RATIO = 1.3
PROMPT_LEN = 16


def actor_config(*overrides: str):
    with initialize_config_module("hpt.config", version_base=None):
        cfg = compose("hpt_trainer", overrides=["actor_rollout_ref.actor.ppo_mini_batch_size=1",
                                                  "actor_rollout_ref.actor.ppo_micro_batch_size_per_gpu=1", *overrides])
    return omega_conf_to_dataclass(cfg.actor_rollout_ref.actor)


def micro_batch(rows: int, length: int, demo_term: str = "sft", seed: int = 0, method: str = "switch"):
    """A padded batch with a quarter demonstration rows (trained by ``demo_term``: sft, off or both), in
    verl's no-padding layout, plus flat log-probs; ``method`` is what the trainer would send."""
    g = torch.Generator().manual_seed(seed)
    lengths = torch.randint(length // 2, length + 1, (rows,), generator=g)
    response_mask = (torch.arange(length)[None] < lengths[:, None]).long()
    prompts = torch.randint(3, 100, (rows, PROMPT_LEN), generator=g)
    attention = torch.cat([torch.ones_like(prompts), response_mask], 1)
    is_demo = torch.arange(rows) % 4 == 0
    prefix = response_mask.bool() & is_demo[:, None]
    weights = {"hpt_rl_weight": (~is_demo).float(),
               "hpt_sft_weight": is_demo.float() * (demo_term in ("sft", "both")),
               "hpt_off_weight": is_demo.float() * (demo_term in ("off", "both"))}
    batch = DataProto.from_single_dict({
        "prompts": prompts, "responses": torch.randint(3, 100, (rows, length), generator=g),
        "input_ids": torch.cat([prompts, torch.randint(3, 100, (rows, length), generator=g)], 1),
        "attention_mask": attention, "position_ids": (attention.cumsum(1) - 1).clamp(min=0),
        "response_mask": response_mask, "prefix_mask": prefix,
        "old_log_probs": -torch.rand(rows, length, generator=g),
        "advantages": torch.randn(rows, 1, generator=g).expand(rows, length).contiguous(),
        "hpt_success": (torch.rand(rows, generator=g) > 0.5).float(), **weights,
    })
    td = left_right_2_no_padding(batch.to_tensordict())
    counts = term_counts(term_masks(response_mask, prefix, *weights.values())).tolist()
    tu.assign_non_tensor(td, dp_size=1, global_batch_size=rows, batch_num_tokens=int(response_mask.sum()),
                         hpt_method=method.removesuffix("_phi"), hpt_phi=method.endswith("_phi"),
                         **{key: int(v) for key, v in zip(COUNT_KEYS, counts, strict=True)})
    total = attention.sum(1)
    offsets = torch.cat([torch.zeros(1, dtype=torch.long), total.cumsum(0)])
    flat = -torch.rand(int(total.sum()), generator=g)
    return td, flat, offsets


def time_once(loss_fn, config, td, flat, offsets) -> float:
    """Seconds of one forward + backward of ``loss_fn`` from fresh leaf log-probs (and entropies: the
    model computes them either way when ``calculate_entropy`` is on, so they are an input here)."""
    log_probs = torch.nested.nested_tensor_from_jagged(flat.clone().requires_grad_(), offsets=offsets)
    output = {"log_probs": log_probs}
    if config.calculate_entropy:
        output["entropy"] = torch.nested.nested_tensor_from_jagged(-flat, offsets=offsets)
    start = time.perf_counter()
    loss, _ = loss_fn(config, output, td)
    loss.backward()
    return time.perf_counter() - start


# method -> (demonstration terms, what the trainer sends as hpt_method)
METHODS = {"switch_nll": ("sft", "switch"), "luffy_shaped": ("off", "luffy"), "chord": ("sft", "chord"),
           "chord_phi": ("sft", "chord_phi"), "srft": ("both", "srft")}


def measure(rows: int, length: int, repeats: int) -> dict:
    """Every variant's timings on the same micro-batch, their medians and the ratios to verl's loss.

    Variants alternate repeat by repeat (after one untimed warm-up round), so a slow spell of the
    machine hits all of them alike. Each method runs under ``global`` and ``original``.
    """
    torch.manual_seed(0)
    with_sft = micro_batch(rows, length)
    entropy_on = "actor_rollout_ref.actor.calculate_entropy=true"
    variants = {"verl_vanilla": (ppo_loss, actor_config(), with_sft),
                "verl_vanilla_with_entropy": (ppo_loss, actor_config(entropy_on), with_sft)}
    for name, (demo_term, method) in METHODS.items():
        batch = micro_batch(rows, length, demo_term=demo_term, method=method)
        # only SRFT reads the entropies (its weights); the others would just add the entropy bonus's cost
        entropy = f"actor_rollout_ref.actor.calculate_entropy={method == 'srft'}"
        for norm in ("global", "original"):
            config = actor_config(f"actor_rollout_ref.actor.loss_normalization={norm}", entropy)
            variants[f"hpt_{name}_{norm}"] = (hpt_actor_loss, config, batch)
    samples: dict[str, list[float]] = {name: [] for name in variants}
    for round_index in range(repeats + 1):
        for name, (loss_fn, config, batch) in variants.items():
            seconds = time_once(loss_fn, config, *batch)
            if round_index:
                samples[name].append(seconds)
    medians = {name: summary(values)["median"] for name, values in samples.items()}
    # SRFT needs the entropies, so it is compared with verl's loss given them too (its entropy bonus)
    ratios = {name.removeprefix("hpt_"): medians[name] / medians["verl_vanilla" + ("_with_entropy" * ("srft" in name))]
              for name in variants if name.startswith("hpt_")}
    return {
        "rows": rows, "response_length": length, "repeats": repeats, "torch_threads": torch.get_num_threads(),
        "samples_s": samples, "median_s": medians, "ratios_over_vanilla": ratios,
        "ratio_rl_plus_nll_over_vanilla": ratios["switch_nll_global"],
        "ratio_rl_plus_shaped_over_vanilla": ratios["luffy_shaped_global"],
        "max_ratio_over_vanilla": max(ratios.values()),
        "target_ratio": TARGET_RATIO,
    }


def main(argv: list[str] | None = None) -> dict:
    args = part_parser(__doc__, with_tiny_dir=False, rows=64, length=1024, repeats=30).parse_args(argv)
    return emit("loss_overhead", measure(args.rows, args.length, args.repeats), args.out)


if __name__ == "__main__":
    main()
