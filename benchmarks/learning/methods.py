"""The compared methods as Hydra overrides of the real trainer (``python -m hpt.main``, CPU overlay).

Every method trains the same rows budget with the same optimiser settings; only the gate (what each
prompt group teaches) and, for the schedule method, λ differ. SFT→GRPO is one run: SFT on every
prompt for ``switch_step`` steps (``trainer.sft_warmup_steps``), then GRPO for the rest of the budget.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Method:
    """A method's name in tables and plots, and its trainer overrides."""

    name: str
    label: str
    overrides: tuple[str, ...]
    sft_warmup: bool = False  # SFT→GRPO: SFT only until the budget's switch step

    def overrides_for(self, switch_step: int) -> tuple[str, ...]:
        """The overrides with the SFT warm-up length filled in where the method has one."""
        return (*self.overrides, f"trainer.sft_warmup_steps={switch_step}") if self.sft_warmup else self.overrides


METHODS: dict[str, Method] = {
    method.name: method
    for method in (
        Method("sft", "SFT only", ("trainer.unify_strategy=sft",)),
        Method("grpo", "GRPO only", ("trainer.unify_strategy=no",)),
        Method("sft_grpo", "SFT→GRPO", ("trainer.unify_strategy=no",), sft_warmup=True),
        Method("luffy", "LUFFY", ("trainer.unify_strategy=luffy",)),
        Method("hpt_switch", "HPT switch (gate 0)", ("trainer.unify_strategy=switch", "trainer.switch_gate=0")),
        Method("hpt_soft", "HPT soft (table 0)", ("trainer.unify_strategy=soft", "trainer.soft_type=0")),
        Method(
            "mix_cosine",
            "GRPO + SFT, λ cosine 1→0",
            (
                "trainer.unify_strategy=mix",
                "trainer.lambda_schedule.name=cosine",
                "trainer.lambda_schedule.start=1.0",
                "trainer.lambda_schedule.end=0.0",
            ),
        ),
    )
}


def resolve(names: list[str]) -> list[Method]:
    """The methods named, in the given order; an unknown name lists the valid ones."""
    unknown = [name for name in names if name not in METHODS]
    if unknown:
        raise ValueError(f"unknown method(s) {', '.join(unknown)}; valid: {', '.join(METHODS)}")
    return [METHODS[name] for name in names]
