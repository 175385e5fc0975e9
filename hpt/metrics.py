"""Every metric key hpt logs, declared once.

Namespaces: ``hpt/gate``, ``hpt/batch``, ``hpt/rollout``, ``hpt/selection``, ``hpt/loss``, ``hpt/update``,
``hpt/agent`` (tool rollouts and multi-turn demonstrations).
"""

from hpt.core.gates import Mode

GATE_SFT_FRAC = "hpt/gate/sft_frac"  # fraction of groups routed to SFT mode (rollouts dropped; see hpt/demo/*)
GATE_RL_FRAC = "hpt/gate/rl_frac"  # fraction of prompt groups trained on their rollouts only
GATE_OFF_FRAC = "hpt/gate/off_frac"  # fraction trained with the off-policy RL loss on the demonstration only
GATE_MIX_FRAC = "hpt/gate/mix_frac"  # fraction trained on rollouts and demonstration together
GATE_FRAC = {Mode.SFT: GATE_SFT_FRAC, Mode.RL: GATE_RL_FRAC, Mode.OFF: GATE_OFF_FRAC, Mode.MIX: GATE_MIX_FRAC}
GATE_MISSING_DEMO = "hpt/gate/missing_demo_groups"  # groups the gate sent to a demonstration that had none (-> RL)
GATE_LAMBDA = "hpt/gate/lambda"  # this step's lambda_schedule value x CHORD's mu (multiplies the demonstration weights)
GATE_PASS_RATE = "hpt/gate/pass_rate"  # mean rollout success rate of the batch
GATE_SUCCESS_HIST = "hpt/gate/successes_{k}"  # fraction of groups with exactly k successful rollouts
DEMO_PROMPT_FRAC = "hpt/demo/prompt_frac"  # share of prompt groups whose demonstration is trained (any term)
DEMO_SFT_PROMPT_FRAC = "hpt/demo/sft_prompt_frac"  # ... by the SFT term
DEMO_OFF_PROMPT_FRAC = "hpt/demo/off_prompt_frac"  # ... by the off-policy RL term
CHORD_MU = "hpt/chord/mu"  # CHORD's mu this step (rollouts weigh 1 - mu, experts mu x lambda)
BATCH_DEMO_ROWS = "hpt/batch/demo_rows"  # demonstration rows appended this step
BATCH_DEMO_TOKENS = "hpt/batch/demo_tokens"  # demonstration tokens trained this step
BATCH_SFT_STREAM_ROWS = "hpt/batch/sft_stream_rows"  # rows from the separate SFT stream
BATCH_PAD_ROWS = "hpt/batch/pad_rows"  # zero-loss rows added to make the batch divisible
BATCH_ROWS = "hpt/batch/rows"  # rows in the rebuilt batch
BATCH_DEMO_TRUNCATED = "hpt/batch/demo_truncated"  # demonstrations cut to the response budget
HISTORY_EXCLUDED = "hpt/history/excluded_prompts"  # prompts the history will skip from the next epoch on
ROLLOUT_TOKENS = "hpt/rollout/generated_tokens"  # response tokens generated this step (every rollout)
ROLLOUT_NO_GRAD_SHARE = "hpt/rollout/no_grad_token_share"  # share of them with no gradient (dropped or 0 advantage)
SELECTION_GENERATED = "hpt/selection/generated_prompts"  # prompts generated for (rollout_selection on)
SELECTION_ROUTED = "hpt/selection/routed_prompts"  # prompts trained on their demonstration without generation
SELECTION_DEFERRED = "hpt/selection/deferred_prompts"  # prompts predicted solved and skipped this epoch
SELECTION_PROBES = "hpt/selection/probes"  # prompts predicted routed/deferred but generated to check the prediction
SELECTION_MISPREDICTIONS = "hpt/selection/mispredictions"  # probes whose outcome contradicted the prediction
SELECTION_FORCED = "hpt/selection/forced_prompts"  # routed prompts generated so the count splits over rollout workers
SELECTION_MEMORY = "hpt/selection/memory_prompts"  # prompts the pass-rate memory has seen
REWARD_MEAN = "hpt/reward/mean"  # mean rollout reward before the rebuild (demo/pad rows excluded)
REWARD_NO_VERDICT = "hpt/reward/no_verdict/{reason}"  # share of rollouts the verifier scored 0 for this reason
LOSS_SFT = "hpt/loss/sft"  # SFT term on demonstration tokens (weighted, before sft_loss_coef)
LOSS_OFF = "hpt/loss/off"  # off-policy RL term on demonstration tokens (weighted, before off_loss_coef)
LOSS_RL = "hpt/loss/rl"  # policy-gradient term on on-policy tokens (with loss_mode=custom: the custom loss)
UPDATE_SKIPPED_NONFINITE = "hpt/update/skipped_nonfinite"  # share of the step's updates skipped (grad norm not finite)
CUSTOM_PREFIX = "hpt/custom/"  # transport prefix of a custom loss's own metrics; stripped before logging
AGENT_TURNS = "hpt/agent/turns_mean"  # verl's num_turns (user prompt + assistant turns + tool turns) per rollout
AGENT_TOOL_CALL_SHARE = "hpt/agent/tool_call_share"  # share of rollouts with at least one tool call
AGENT_TOOL_CALLS = "hpt/agent/tool_calls_mean"  # tool calls run per rollout (the rollout's parser on its turns)
AGENT_TOOL_ERRORS = "hpt/agent/tool_errors"  # tool results that are verl's error observations (unknown tool, bad args)
AGENT_DEMO_TURNS_DROPPED = "hpt/agent/demo_turns_dropped"  # assistant turns cut from demonstrations by the budget
AGENT_DEMO_TOOL_ROWS = "hpt/agent/demo_rows_with_tool_calls"  # trained demonstration rows that call a tool
AGENT_RL_TOOL_ROWS = "hpt/agent/rl_rows_with_tool_calls"  # rollouts kept for RL (weight > 0) that call a tool
AGENT_DEMO_IMAGES = "hpt/agent/demo_observation_images"  # observation images (pages, crops) in trained demonstrations
