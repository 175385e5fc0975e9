"""Per-prompt pass-rate memory: a Beta posterior over each prompt's rollout success probability.

Every generated group updates its prompt (key: the dataset's ``extra_info.index``) with its
successes out of ``n`` rollouts. Older visits fade: before a visit is added, the prompt's
accumulated evidence is multiplied by ``decay`` (1 = never forget), so a prompt's posterior follows
a policy that keeps changing and its evidence saturates at ``n / (1 - decay)`` rollouts.

With ``p ~ Beta(a, b)`` the probability that all ``n`` rollouts fail is
``E[(1 - p)^n] = prod_{i<n} (b + i) / (a + b + i)``, and that all succeed is
``prod_{i<n} (a + i) / (a + b + i)``: the predictions the rollout selection acts on.
Pure Python; ``state_dict`` is plain lists for the checkpoint.
"""

from __future__ import annotations

import math
from collections.abc import Hashable
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class MemoryConfig:
    """Beta prior ``Beta(prior_alpha, prior_beta)`` and the per-visit ``decay`` of past evidence."""

    prior_alpha: float = 1.0
    prior_beta: float = 1.0
    decay: float = 0.8

    def __post_init__(self) -> None:
        for name in ("prior_alpha", "prior_beta"):
            value = getattr(self, name)
            if not (isinstance(value, int | float) and math.isfinite(value) and value > 0):
                raise ValueError(f"{name} must be a finite number > 0, got {value!r}")
        if not (isinstance(self.decay, int | float) and 0 < self.decay <= 1):
            raise ValueError(f"decay must be in (0, 1] (1 = keep every visit), got {self.decay!r}")


@dataclass
class PassRateMemory:
    """Decayed success/failure counts per prompt on top of a shared Beta prior."""

    config: MemoryConfig = field(default_factory=MemoryConfig)
    counts: dict[Hashable, tuple[float, float]] = field(default_factory=dict)  # key -> (successes, failures)

    def __contains__(self, key: Hashable) -> bool:
        return key in self.counts

    def __len__(self) -> int:
        return len(self.counts)

    def update(self, key: Hashable, successes: int, trials: int) -> None:
        """Add one visit: ``successes`` of ``trials`` rollouts succeeded (older evidence decays first)."""
        if trials < 1 or not 0 <= successes <= trials:
            raise ValueError(f"need 0 <= successes <= trials and trials >= 1, got {successes}/{trials}")
        wins, losses = self.counts.get(key, (0.0, 0.0))
        decay = self.config.decay
        self.counts[key] = (decay * wins + successes, decay * losses + (trials - successes))

    def posterior(self, key: Hashable) -> tuple[float, float]:
        """``(alpha, beta)`` of the prompt's Beta posterior (the prior for an unseen prompt)."""
        wins, losses = self.counts.get(key, (0.0, 0.0))
        return self.config.prior_alpha + wins, self.config.prior_beta + losses

    def mean(self, key: Hashable) -> float:
        """Posterior mean pass rate."""
        alpha, beta = self.posterior(key)
        return alpha / (alpha + beta)

    def variance(self, key: Hashable) -> float:
        """Posterior variance of the pass rate (the estimate's uncertainty)."""
        alpha, beta = self.posterior(key)
        total = alpha + beta
        return alpha * beta / (total * total * (total + 1))

    def evidence(self, key: Hashable) -> float:
        """Decayed number of rollouts observed for the prompt (0 when unseen)."""
        wins, losses = self.counts.get(key, (0.0, 0.0))
        return wins + losses

    def prob_all_fail(self, key: Hashable, n: int) -> float:
        """Posterior predictive probability that ``n`` fresh rollouts all fail."""
        alpha, beta = self.posterior(key)
        return math.prod((beta + i) / (alpha + beta + i) for i in range(n))

    def prob_all_pass(self, key: Hashable, n: int) -> float:
        """Posterior predictive probability that ``n`` fresh rollouts all succeed."""
        alpha, beta = self.posterior(key)
        return math.prod((alpha + i) / (alpha + beta + i) for i in range(n))

    def state_dict(self) -> dict[str, Any]:
        """Plain lists (keys as Python scalars) readable with ``torch.load(weights_only=True)``."""
        return {"counts": [[_plain(key), float(w), float(f)] for key, (w, f) in self.counts.items()]}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Replace the memory with a saved one."""
        self.counts = {key: (float(w), float(f)) for key, w, f in state["counts"]}


def _plain(key: Hashable) -> Hashable:
    item = getattr(key, "item", None)
    return item() if callable(item) else key
