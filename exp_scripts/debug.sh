#!/usr/bin/env bash
# HPT switch-mode training, end to end on verl.
#
# CPU (default): creates .venv, installs, builds the tiny arithmetic model and data once (.hpt_tiny/),
# warm-starts it with a short SFT (~1-3 min) so it solves some problems but not all, then trains it with
# HPT switch mode on the CPU: prompts whose rollouts all fail are trained on their demonstration
# (SFT), the others with GRPO. Watch hpt/gate/sft_frac fall as it learns. Rollout selection is on
# (trainer.rollout_selection.enable=true; pass =false to turn it off): a prompt seen before whose rollouts
# are predicted to all fail trains on its demonstration without generating, one predicted to all pass is
# skipped for the epoch; the 100 default steps (1600 prompts of 2000) do not revisit a prompt, so it acts
# only in longer runs (e.g. trainer.total_training_steps=250).
# WARM_START_STEPS=0 starts from the random model instead (every prompt then starts on SFT).
#
# TASK=visual (CPU): hpt with a vision-language policy: a tiny random Qwen2.5-VL and the visual task
# (a digit drawn on a 56x56 image plus a number in the text), built once into .hpt_vlm/ by
# `python -m hpt.toy.build_vlm`. The gate is LUFFY's mix (every group trains its rollouts with GRPO and
# its demonstration), so every step has images in both RL and demonstration rows: the random model
# solves nothing, and switch mode would send every group to SFT (pass trainer.unify_strategy=switch to
# see that). 30 steps, about 3 minutes; the pipeline runs end to end, nothing is expected to be learned.
# No torchvision is needed (docs/vlm.md explains why).
#
# TASK=vrag (CPU): visual RAG: the tiny VLM answers fact questions by calling a `search` tool that returns
# page images and a `crop` tool that zooms into the last image (`python -m hpt.toy.build_vrag`, built once
# into .hpt_vrag/). The gate is `mix` (GRPO on the rollouts and SFT on the demonstrated search -> page ->
# crop -> answer trajectory of every prompt); 20 steps, random model, nothing is expected to be learned.
#
# GPU: set MODEL_PATH (a local Hugging Face model directory) and TRAIN_FILES / VAL_FILES (verl
# parquet with the demonstration in extra_info.target); the same trainer runs with vLLM on
# N_GPUS GPUs (default 4) in an environment where `pip install -e .[gpu]` was done.
#
# Every step's metrics go to $VERL_FILE_LOGGER_PATH (default outputs/debug/metrics.jsonl, verl's file
# logger); at the end the script prints the `hpt report` command that turns them into curves.
# Killed runs resume: run the script again with the same arguments (trainer.resume_mode=auto finds the
# last checkpoint; save one with e.g. trainer.save_freq=10); the metrics of the resumed run are then
# appended to the file (a step logged twice counts once in `hpt report`: the later line wins).
#
# Extra arguments are Hydra overrides, e.g. `bash exp_scripts/debug.sh trainer.total_training_steps=20`.
set -euo pipefail
cd "$(dirname "$0")/.."
. exp_scripts/lib/recipe_utils.sh
export HYDRA_FULL_ERROR=1 RAY_DEDUP_LOGS=0
export VERL_FILE_LOGGER_PATH="${VERL_FILE_LOGGER_PATH:-$PWD/outputs/debug/metrics.jsonl}"
mkdir -p "$(dirname "$VERL_FILE_LOGGER_PATH")"  # verl's file logger does not create it

report_hint() {  # the venv's hpt by full path: the caller's shell may not have it on PATH
  echo "hpt: metrics in $VERL_FILE_LOGGER_PATH; curves and a summary:"
  echo "  $(command -v hpt || echo hpt) report $(dirname "$VERL_FILE_LOGGER_PATH")"
}

if [ -z "${MODEL_PATH:-}" ] && [ "${TASK:-arithmetic}" = visual ]; then
  . exp_scripts/setup_cpu.sh
  VLM_DIR="${VLM_DIR:-$PWD/.hpt_vlm}"
  python -m hpt.toy.build_vlm --out "$VLM_DIR"
  CKPT_DIR="$PWD/checkpoints/hpt-luffy-vlm-cpu"
  trap report_hint EXIT
  hpt_train_appending_metrics "$CKPT_DIR" --config-name hpt_trainer_cpu \
    actor_rollout_ref.model.path="$VLM_DIR/model" \
    data.train_files="$VLM_DIR/data/train.parquet" \
    data.val_files="$VLM_DIR/data/test.parquet" \
    data.custom_cls.path=pkg://hpt.cpu.vision_dataset \
    data.custom_cls.name=PillowVisionDataset \
    data.max_prompt_length=16 \
    data.max_response_length=16 \
    data.train_batch_size=8 \
    actor_rollout_ref.actor.ppo_mini_batch_size=8 \
    actor_rollout_ref.actor.ppo_micro_batch_size_per_gpu=32 \
    actor_rollout_ref.rollout.log_prob_micro_batch_size_per_gpu=32 \
    actor_rollout_ref.ref.log_prob_micro_batch_size_per_gpu=32 \
    trainer.unify_strategy=luffy \
    trainer.total_training_steps=30 \
    trainer.test_freq=10 \
    trainer.experiment_name=hpt-luffy-vlm-cpu \
    trainer.default_local_dir="$CKPT_DIR" \
    'trainer.logger=[console,file]' \
    "$@"
  exit 0
fi

if [ -z "${MODEL_PATH:-}" ] && [ "${TASK:-arithmetic}" = vrag ]; then
  . exp_scripts/setup_cpu.sh
  export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"  # Ray workers import the tools (hpt.tools.*) from this tree
  VRAG_DIR="${VRAG_DIR:-$PWD/.hpt_vrag}"
  python -m hpt.toy.build_vrag --out "$VRAG_DIR"
  CKPT_DIR="$PWD/checkpoints/hpt-mix-vrag-cpu"
  trap report_hint EXIT
  hpt_train_appending_metrics "$CKPT_DIR" --config-name hpt_trainer_cpu \
    actor_rollout_ref.model.path="$VRAG_DIR/model" \
    data.train_files="$VRAG_DIR/data/train.parquet" \
    data.val_files="$VRAG_DIR/data/val.parquet" \
    data.custom_cls.path=pkg://hpt.cpu.vision_dataset \
    data.custom_cls.name=PillowVisionDataset \
    data.max_prompt_length=128 \
    data.max_response_length=256 \
    data.train_batch_size=8 \
    actor_rollout_ref.rollout.n=2 \
    actor_rollout_ref.actor.ppo_mini_batch_size=8 \
    actor_rollout_ref.actor.ppo_micro_batch_size_per_gpu=8 \
    actor_rollout_ref.rollout.log_prob_micro_batch_size_per_gpu=8 \
    actor_rollout_ref.ref.log_prob_micro_batch_size_per_gpu=8 \
    actor_rollout_ref.rollout.multi_turn.tool_config_path="$VRAG_DIR/tools/vrag.yaml" \
    actor_rollout_ref.rollout.multi_turn.max_assistant_turns=3 \
    actor_rollout_ref.rollout.multi_turn.format=hermes \
    trainer.unify_strategy=mix \
    trainer.total_training_steps=20 \
    trainer.test_freq=10 \
    trainer.experiment_name=hpt-mix-vrag-cpu \
    trainer.default_local_dir="$CKPT_DIR" \
    'trainer.logger=[console,file]' \
    "$@"
  exit 0
fi

if [ -z "${MODEL_PATH:-}" ]; then
  . exp_scripts/setup_cpu.sh
  TINY_DIR="${TINY_DIR:-$PWD/.hpt_tiny}"
  WARM_START_STEPS="${WARM_START_STEPS:-200}"
  # 512 held-out prompts: one standard error of the validation accuracy is ~2 points, so the curve is signal
  python -m hpt.toy.build_tiny --out "$TINY_DIR" --test-size 512 --warm-start-steps "$WARM_START_STEPS"
  if [ "$WARM_START_STEPS" = 0 ]; then START_MODEL="$TINY_DIR/model"; else START_MODEL="$TINY_DIR/model_warm"; fi
  CKPT_DIR="$PWD/checkpoints/hpt-switch-cpu"
  trap report_hint EXIT
  hpt_train_appending_metrics "$CKPT_DIR" --config-name hpt_trainer_cpu \
    actor_rollout_ref.model.path="$START_MODEL" \
    data.train_files="$TINY_DIR/data/train.parquet" \
    data.val_files="$TINY_DIR/data/test.parquet" \
    trainer.rollout_selection.enable=true \
    trainer.default_local_dir="$CKPT_DIR" \
    'trainer.logger=[console,file]' \
    "$@"
  exit 0
fi

: "${TRAIN_FILES:?set TRAIN_FILES to a verl parquet with extra_info.target demonstrations}"
: "${VAL_FILES:?set VAL_FILES to a verl parquet for validation}"
N_GPUS="${N_GPUS:-4}"
CKPT_DIR="$PWD/checkpoints/hpt-switch"
trap report_hint EXIT
hpt_train_appending_metrics "$CKPT_DIR" \
  actor_rollout_ref.model.path="$MODEL_PATH" \
  data.train_files="$TRAIN_FILES" \
  data.val_files="$VAL_FILES" \
  data.train_batch_size=128 \
  data.max_prompt_length=1024 \
  data.max_response_length=4096 \
  actor_rollout_ref.rollout.name=vllm \
  actor_rollout_ref.rollout.n=8 \
  actor_rollout_ref.rollout.tensor_model_parallel_size=1 \
  actor_rollout_ref.rollout.gpu_memory_utilization=0.5 \
  actor_rollout_ref.actor.strategy=fsdp2 \
  actor_rollout_ref.actor.ppo_mini_batch_size=64 \
  actor_rollout_ref.actor.use_dynamic_bsz=true \
  actor_rollout_ref.actor.ppo_max_token_len_per_gpu=16384 \
  actor_rollout_ref.actor.optim.lr=1e-6 \
  actor_rollout_ref.model.enable_gradient_checkpointing=true \
  actor_rollout_ref.rollout.log_prob_use_dynamic_bsz=true \
  actor_rollout_ref.rollout.log_prob_max_token_len_per_gpu=16384 \
  trainer.unify_strategy=switch \
  trainer.switch_gate=0 \
  trainer.n_gpus_per_node="$N_GPUS" \
  trainer.nnodes=1 \
  trainer.test_freq=10 \
  trainer.save_freq=50 \
  trainer.total_epochs=1 \
  trainer.default_local_dir="$CKPT_DIR" \
  'trainer.logger=[console,file]' \
  "$@"
