"""The seed-003 custom-loss contract: ``compute_custom_policy_loss`` registered as verl's ``custom`` loss.

A user file decorated with ``@register_policy_loss("custom")`` is imported from
``actor_rollout_ref.actor.custom_loss_path`` and selected with ``policy_loss.loss_mode=custom``. Its
``config.global_batch_info`` carries, next to verl's four aggregation keys, the hybrid data:

- ``sft_loss``: scalar tensor with gradient, the demonstration NLL of this micro-batch's share of the
  global token mean (summed over micro-batches and ranks it is the mini-batch's mean NLL);
- ``sft_log_prob``: ``(bs, response_length)`` current-policy log-probs with gradient, the same rows as
  ``log_prob`` (demonstration rows sit in the same micro-batch as rollout rows);
- ``sft_labels_mask``: ``(bs, response_length)`` float mask of the demonstration tokens (1 on the
  tokens of demonstration rows with SFT weight > 0, 0 elsewhere); ``response_mask`` is 0 there;
- ``global_step`` (1-indexed) and ``total_steps``.

Stock verl's ``agg_loss`` accepts only its four keyword arguments, so ``agg_loss(...,
**config.global_batch_info)`` would raise a TypeError on the extra keys. ``GlobalBatchInfo`` is a
dict whose keyword unpacking (``keys()``/iteration) yields only the aggregation keys, while item
access, ``get`` and ``in`` see everything; verl itself is not patched.
"""

import verl  # noqa: F401  (first: lets verl load hpt's plugin before the imports below)
import importlib.util
import sys
from functools import cache
from pathlib import Path

from verl.trainer.ppo.core_algos import POLICY_LOSS_REGISTRY

AGGREGATION_KEYS = ("dp_size", "batch_num_tokens", "global_batch_size", "loss_scale_factor")
HYBRID_KEYS = ("sft_loss", "sft_log_prob", "sft_labels_mask", "global_step", "total_steps")
CUSTOM_LOSS_MODE = "custom"


class GlobalBatchInfo(dict):
    """``config.global_batch_info`` whose ``**`` unpacking passes only verl's aggregation keys."""

    def keys(self):  # type: ignore[override]
        return [key for key in super().keys() if key in AGGREGATION_KEYS]

    def __iter__(self):
        return iter(self.keys())

    def hybrid_items(self) -> dict:
        """The hybrid keys (hidden from iteration), for logging and tests."""
        return {key: self[key] for key in HYBRID_KEYS if key in self}


@cache
def load_custom_loss(path: str):
    """Import the user's loss file once per process and return the function it registered as ``custom``.

    The function is taken from what *this* file registered (verl's registry holds one ``custom``
    entry, and an earlier file's entry must not be mistaken for this one's).
    """
    file = Path(path)
    if not file.is_file():
        raise FileNotFoundError(
            f"actor_rollout_ref.actor.custom_loss_path={path!r} does not exist; point it at the .py file that "
            "defines compute_custom_policy_loss"
        )
    name = f"hpt_custom_loss_{abs(hash(str(file.resolve())))}"
    spec = importlib.util.spec_from_file_location(name, file)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    previous = POLICY_LOSS_REGISTRY.pop(CUSTOM_LOSS_MODE, None)
    try:
        spec.loader.exec_module(module)
    finally:
        registered = POLICY_LOSS_REGISTRY.get(CUSTOM_LOSS_MODE)
        if registered is None and previous is not None:
            POLICY_LOSS_REGISTRY[CUSTOM_LOSS_MODE] = previous
    if registered is None:
        raise ValueError(
            f"{path} did not register a policy loss named {CUSTOM_LOSS_MODE!r}; decorate compute_custom_policy_loss "
            f'with @register_policy_loss("{CUSTOM_LOSS_MODE}") from verl.trainer.ppo.core_algos'
        )
    return registered
