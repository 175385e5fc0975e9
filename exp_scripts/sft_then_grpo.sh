#!/usr/bin/env bash
# The SFT->GRPO baseline: two runs of one recipe. Stage 1 trains METHOD=sft and saves a Hugging Face
# copy of its final weights (verl writes it to <stage-1 dir>/global_step_<N>/actor/huggingface when
# actor.checkpoint.save_contents includes hf_model); stage 2 trains METHOD=grpo starting from it.
#
#   bash exp_scripts/sft_then_grpo.sh                                   # seed-003 set-up (Qwen3-1.7B)
#   RECIPE=qwen2.5_math_7b_openr1.sh bash exp_scripts/sft_then_grpo.sh  # HPT paper set-up
#   STAGE=2 bash exp_scripts/sft_then_grpo.sh                           # stage 2 only, from a finished stage 1
#   bash exp_scripts/sft_then_grpo.sh --cfg job                         # print both stages' configs
#
# Every environment variable of the recipe applies to both stages (data paths, GPUs, memory, logging);
# METHOD, EXPERIMENT_NAME, CKPT_DIR and SAVE_HF_MODEL are set per stage here. Extra arguments are Hydra
# overrides for both stages; STAGE1_ARGS / STAGE2_ARGS (space-separated) add overrides to one stage.
# Each stage gets the recipe's whole budget (seed-003: 15 epochs; MetaMathQA has ~395k rows), so
# usually shorten stage 1, e.g. STAGE1_ARGS="trainer.total_epochs=2 data.train_max_samples=20000".
# Data: the recipe's defaults (seed-003: stage 1 on MetaMathQA, stage 2 on DeepMath; HPT paper set-up:
# OpenR1 for both), or STAGE1_TRAIN_FILES / STAGE2_TRAIN_FILES. The data preparation commands are in
# the recipe's header.
set -euo pipefail
cd "$(dirname "$0")/.."
. exp_scripts/lib/recipe_utils.sh

RECIPE="${RECIPE:-qwen3_1.7b_deepmath.sh}"      # a recipe in exp_scripts/ (or a path to one)
STAGE="${STAGE:-both}"                          # both | 1 | 2
RUN_NAME="${RUN_NAME:-$(basename "$RECIPE" .sh)}"
STAGE1_EXPERIMENT_NAME="${STAGE1_EXPERIMENT_NAME:-$RUN_NAME-sft-stage1}"
STAGE2_EXPERIMENT_NAME="${STAGE2_EXPERIMENT_NAME:-$RUN_NAME-sft-then-grpo}"
STAGE1_CKPT_DIR="${STAGE1_CKPT_DIR:-${CKPT_ROOT:-$PWD/checkpoints}/sft_then_grpo/$STAGE1_EXPERIMENT_NAME}"
STAGE2_CKPT_DIR="${STAGE2_CKPT_DIR:-${CKPT_ROOT:-$PWD/checkpoints}/sft_then_grpo/$STAGE2_EXPERIMENT_NAME}"
STAGE1_HF_DIR="${STAGE1_HF_DIR:-}"              # stage 2's start; empty = stage 1's last checkpoint
STAGE1_TRAIN_FILES="${STAGE1_TRAIN_FILES:-}"    # empty = the recipe's default for METHOD=sft
STAGE2_TRAIN_FILES="${STAGE2_TRAIN_FILES:-}"    # empty = the recipe's default for METHOD=grpo
read -r -a STAGE1_EXTRA <<< "${STAGE1_ARGS:-}"
read -r -a STAGE2_EXTRA <<< "${STAGE2_ARGS:-}"

if [ -f "$RECIPE" ]; then RECIPE_PATH="$RECIPE"; else RECIPE_PATH="exp_scripts/$RECIPE"; fi
[ -f "$RECIPE_PATH" ] || hpt_die "RECIPE=$RECIPE: no such recipe in exp_scripts/"
case "$STAGE" in both | 1 | 2) ;; *) hpt_die "STAGE=$STAGE is not one of both, 1, 2" ;; esac

# The Hugging Face weights stage 1 left behind: the step named in verl's checkpoint tracker file.
stage1_hf_dir() {
  if [ -n "$STAGE1_HF_DIR" ]; then
    echo "$STAGE1_HF_DIR"
    return
  fi
  local tracker="$STAGE1_CKPT_DIR/latest_checkpointed_iteration.txt"
  if [ -f "$tracker" ]; then
    echo "$STAGE1_CKPT_DIR/global_step_$(tr -d '[:space:]' < "$tracker")/actor/huggingface"
  elif hpt_print_only "$@"; then
    echo "hpt recipe: stage 1 has not run yet; its last step stands in as global_step_LAST" >&2
    echo "$STAGE1_CKPT_DIR/global_step_LAST/actor/huggingface"
  else
    hpt_die "stage 1 left no checkpoint ($tracker is missing): run stage 1 (STAGE=1 or both) with trainer.save_freq > 0, or set STAGE1_HF_DIR"
  fi
}

if [ "$STAGE" != 2 ]; then
  STAGE1_ENV=(METHOD=sft SAVE_HF_MODEL=1 EXPERIMENT_NAME="$STAGE1_EXPERIMENT_NAME" CKPT_DIR="$STAGE1_CKPT_DIR")
  [ -z "$STAGE1_TRAIN_FILES" ] || STAGE1_ENV+=(TRAIN_FILES="$STAGE1_TRAIN_FILES")
  echo "hpt recipe: stage 1 (SFT) -> $STAGE1_CKPT_DIR" >&2
  env "${STAGE1_ENV[@]}" bash "$RECIPE_PATH" "$@" "${STAGE1_EXTRA[@]}"
fi
[ "$STAGE" != 1 ] || exit 0

START_MODEL="$(stage1_hf_dir "$@")"
if ! hpt_print_only "$@" && [ ! -f "$START_MODEL/config.json" ]; then
  hpt_die "$START_MODEL holds no Hugging Face model: stage 1 must save with hf_model in actor.checkpoint.save_contents (this script sets SAVE_HF_MODEL=1)"
fi
STAGE2_ENV=(METHOD=grpo MODEL_PATH="$START_MODEL" EXPERIMENT_NAME="$STAGE2_EXPERIMENT_NAME" CKPT_DIR="$STAGE2_CKPT_DIR")
[ -z "$STAGE2_TRAIN_FILES" ] || STAGE2_ENV+=(TRAIN_FILES="$STAGE2_TRAIN_FILES")
echo "hpt recipe: stage 2 (GRPO) from $START_MODEL -> $STAGE2_CKPT_DIR" >&2
exec env "${STAGE2_ENV[@]}" bash "$RECIPE_PATH" "$@" "${STAGE2_EXTRA[@]}"
