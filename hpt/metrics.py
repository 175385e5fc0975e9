"""Every metric key hpt logs, declared once. Namespaces: ``hpt/gate``, ``hpt/batch``, ``hpt/loss``."""

GATE_SFT_FRAC = "hpt/gate/sft_frac"  # fraction of prompt groups trained on their demonstration
GATE_RL_FRAC = "hpt/gate/rl_frac"  # fraction of prompt groups trained on their rollouts
GATE_MISSING_DEMO = "hpt/gate/missing_demo_groups"  # SFT-gated groups without a demonstration (-> RL)
BATCH_DEMO_ROWS = "hpt/batch/demo_rows"  # demonstration rows appended this step
BATCH_PAD_ROWS = "hpt/batch/pad_rows"  # zero-loss rows added to make the batch divisible
BATCH_ROWS = "hpt/batch/rows"  # rows in the rebuilt batch
BATCH_DEMO_TRUNCATED = "hpt/batch/demo_truncated"  # demonstrations cut to the response budget
REWARD_MEAN = "hpt/reward/mean"  # mean rollout reward before the rebuild (demo/pad rows excluded)
LOSS_SFT = "hpt/loss/sft"  # demonstration term (before sft_loss_coef)
LOSS_RL = "hpt/loss/rl"  # policy-gradient term on on-policy tokens
