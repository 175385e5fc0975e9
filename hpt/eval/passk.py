"""pass@k and mean@k from per-prompt sample counts (pure Python)."""

from __future__ import annotations

from math import comb


def pass_at_k(samples: int, correct: int, k: int) -> float:
    """Unbiased estimate of P(at least one of k samples is correct) from ``correct`` of ``samples``.

    ``1 - C(samples - correct, k) / C(samples, k)``: the chance that a random k-subset of the drawn
    samples misses every correct one, complemented. Needs ``k <= samples``.
    """
    if not 0 <= correct <= samples or not 1 <= k <= samples:
        raise ValueError(f"need 0 <= correct <= samples and 1 <= k <= samples, got {correct}, {samples}, {k}")
    if samples - correct < k:
        return 1.0
    return 1.0 - comb(samples - correct, k) / comb(samples, k)


def mean_at_k(correct: int, samples: int) -> float:
    """Average accuracy of the drawn samples (verl's ``mean@k``)."""
    return correct / samples
