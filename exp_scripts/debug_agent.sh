#!/usr/bin/env bash
# HPT switch on the CPU agent toy: a tiny model that answers fact questions by calling a BM25 `search` tool.
#
# Builds the toy once (.hpt_agent/: tool-capable tiny model, invented facts and questions, corpus and index,
# tool config, a short warm start on demonstrated trajectories; `python -m hpt.toy.build_agent`), then trains
# HPT switch with verl's tool agent loop on the CPU: every prompt is rolled out as a multi-turn trajectory
# (search calls, tool results, answer); groups whose rollouts all fail are trained on their demonstrated
# trajectory (assistant turns only; tool results are context), the others with GRPO. Watch
# hpt/gate/pass_rate (success rate) and hpt/agent/tool_call_share rise, `hpt report` draws them.
#
# An active virtualenv is used as it is; otherwise exp_scripts/setup_cpu.sh creates .venv and installs hpt.
# SEED (default 0: the world, data, model, warm start, data order and sampling; another seed builds its own
# toy and writes its own outputs, suffixed _seed$SEED), AGENT_DIR (default .hpt_agent), WARM_START_STEPS
# (default 400) and NO_TOOL_SHARE (default 0.3: that share of the warm start's trajectories answer by
# guessing, without the tool; the warm model then calls the tool in ~2 of 3 rollouts and succeeds in ~1 of
# 4, so both can visibly rise), TOTAL_STEPS (default 80). FORCE=1 rebuilds the toy's assets (needed when
# an existing AGENT_DIR was built with other settings).
# LR (default 1.5e-3) is the actor's learning rate, reached after 5 warm-up steps; each batch is trained for
# 4 epochs (actor_rollout_ref.actor.ppo_epochs=4): one pass at a lower lr moves the policy too little in a
# demo's length (docs/agents.md has the measurements).
# Extra arguments are Hydra overrides, e.g. `bash exp_scripts/debug_agent.sh trainer.total_training_steps=10`.
set -euo pipefail
cd "$(dirname "$0")/.."
. exp_scripts/lib/recipe_utils.sh
export HYDRA_FULL_ERROR=1 RAY_DEDUP_LOGS=0
SEED="${SEED:-0}"
case "$SEED" in '' | *[!0-9]*) echo "debug_agent.sh: SEED must be a non-negative integer, got '$SEED'" >&2; exit 1 ;; esac
SUFFIX=""
if [ "$SEED" != 0 ]; then SUFFIX="_seed$SEED"; fi
export VERL_FILE_LOGGER_PATH="${VERL_FILE_LOGGER_PATH:-$PWD/outputs/debug_agent$SUFFIX/metrics.jsonl}"
mkdir -p "$(dirname "$VERL_FILE_LOGGER_PATH")"  # verl's file logger does not create it
if [ -z "${VIRTUAL_ENV:-}" ]; then
  . exp_scripts/setup_cpu.sh
else
  export VERL_PLATFORM=cpu TOKENIZERS_PARALLELISM=false WANDB_MODE=disabled HF_HUB_OFFLINE=1
fi
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"  # Ray workers import hpt.tools.search from this tree

AGENT_DIR="${AGENT_DIR:-$PWD/.hpt_agent$SUFFIX}"
WARM_START_STEPS="${WARM_START_STEPS:-400}"
python -m hpt.toy.build_agent --out "$AGENT_DIR" --seed "$SEED" --warm-start-steps "$WARM_START_STEPS" \
  --no-tool-share "${NO_TOOL_SHARE:-0.3}" ${FORCE:+--force}
if [ "$WARM_START_STEPS" = 0 ]; then START_MODEL="$AGENT_DIR/model"; else START_MODEL="$AGENT_DIR/model_warm"; fi
CKPT_DIR="$PWD/checkpoints/hpt-switch-agent-cpu$SUFFIX"
trap 'echo "hpt: metrics in $VERL_FILE_LOGGER_PATH; curves: hpt report $(dirname "$VERL_FILE_LOGGER_PATH")"' EXIT
hpt_train_appending_metrics "$CKPT_DIR" --config-name hpt_trainer_cpu \
  actor_rollout_ref.model.path="$START_MODEL" \
  data.train_files="$AGENT_DIR/data/train.parquet" \
  data.val_files="$AGENT_DIR/data/val.parquet" \
  data.max_prompt_length=128 \
  data.max_response_length=256 \
  data.train_batch_size=16 \
  actor_rollout_ref.actor.ppo_mini_batch_size=16 \
  actor_rollout_ref.rollout.n=4 \
  actor_rollout_ref.rollout.multi_turn.tool_config_path="$AGENT_DIR/tools/search.yaml" \
  actor_rollout_ref.rollout.multi_turn.max_assistant_turns=3 \
  actor_rollout_ref.rollout.multi_turn.format=hermes \
  data.seed="$SEED" \
  actor_rollout_ref.rollout.seed="$SEED" \
  trainer.unify_strategy=switch \
  actor_rollout_ref.actor.optim.lr="${LR:-1.5e-3}" \
  actor_rollout_ref.actor.optim.lr_warmup_steps=5 \
  actor_rollout_ref.actor.ppo_epochs=4 \
  trainer.total_training_steps="${TOTAL_STEPS:-80}" \
  trainer.test_freq=10 \
  trainer.experiment_name="hpt-switch-agent-cpu$SUFFIX" \
  trainer.default_local_dir="$CKPT_DIR" \
  'trainer.logger=[console,file]' \
  "$@"
