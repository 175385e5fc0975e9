"""The file verl loads as ``reward.custom_reward_function.path`` for hpt's dispatcher (``name: compute_score``).

verl imports a reward file under a fresh module name, so defining the registry here would give verl a
second, empty copy of it; this file only re-exports the dispatcher of ``hpt.rewards.registry``, where
``register_verifier`` calls land.
"""

from hpt.rewards.registry import compute_score

__all__ = ["compute_score"]
