#!/usr/bin/env bash
# HPT with a vision-language policy: Qwen2.5-VL-7B-Instruct on SlideVQA document QA, the question
# given with its evidence slide images (oracle pages; searching the deck with tools is the VRAG
# task that follows the multi-turn work). Switch gate 0: a question whose 5 rollouts all score 0
# trains on its demonstration (<answer>gold</answer>) with SFT, the others with GRPO. Reward:
# hpt.rewards.docqa, ANLS as the score (partial credit above the 0.5 threshold), exact match as acc.
#
# Memory (docs/vlm.md has the per-GPU estimate, on paper): the original HPT README's knobs for a 7B
# policy on 8 x 80 GB, as environment variables: FSDP parameter and optimizer offload, gradient
# checkpointing, dynamic batch size, vLLM at 40 % of GPU memory, rollout tensor parallel 2.
#
# Data, made once from a local copy of SlideVQA (annotations/qa/{train,dev}.jsonl and images/<split>/<deck>/):
#   python -m hpt.data.prepare slidevqa --qa $SLIDEVQA/annotations/qa/train.jsonl \
#       --images $SLIDEVQA/images/train --out $DATA_DIR/slidevqa_train.parquet
#   python -m hpt.data.prepare slidevqa --qa $SLIDEVQA/annotations/qa/dev.jsonl \
#       --images $SLIDEVQA/images/dev --out $DATA_DIR/slidevqa_dev.parquet
# (DATA_DIR defaults to $HOME/data/hpt; each image is bounded to MAX_PIXELS in the preparer.)
#
# Run (after `pip install -e .[gpu,vlm]`: torchvision and qwen-vl-utils read the images on GPU machines):
#   MODEL_PATH=/models/Qwen2.5-VL-7B-Instruct bash exp_scripts/qwen2.5_vl_7b_slidevqa.sh
#   bash exp_scripts/qwen2.5_vl_7b_slidevqa.sh --cfg job     # print the composed config, train nothing
# Extra arguments are Hydra overrides and win over the script's.
set -euo pipefail
cd "$(dirname "$0")/.."
. exp_scripts/lib/recipe_utils.sh
export HYDRA_FULL_ERROR=1

MODEL_PATH="${MODEL_PATH:-Qwen/Qwen2.5-VL-7B-Instruct}"
DATA_DIR="${DATA_DIR:-$HOME/data/hpt}"
TRAIN_FILES="${TRAIN_FILES:-$DATA_DIR/slidevqa_train.parquet}"
VAL_FILES="${VAL_FILES:-$DATA_DIR/slidevqa_dev.parquet}"

# ---- budget
N_GPUS_PER_NODE="${N_GPUS_PER_NODE:-8}"
NNODES="${NNODES:-1}"
TOTAL_TRAINING_STEPS="${TOTAL_TRAINING_STEPS:-300}"
TRAIN_BATCH_SIZE="${TRAIN_BATCH_SIZE:-64}"
PPO_MINI_BATCH_SIZE="${PPO_MINI_BATCH_SIZE:-32}"
ROLLOUT_N="${ROLLOUT_N:-5}"
MAX_PROMPT_LENGTH="${MAX_PROMPT_LENGTH:-4096}"    # up to 4 pages x 1024 image tokens + the question
MAX_RESPONSE_LENGTH="${MAX_RESPONSE_LENGTH:-1024}"
LR="${LR:-1e-6}"
SWITCH_GATE="${SWITCH_GATE:-0}"
SFT_LOSS_COEF="${SFT_LOSS_COEF:-1.0}"

# ---- memory (the original HPT README's knobs)
ROLLOUT_TP="${ROLLOUT_TP:-2}"
GPU_MEMORY_UTILIZATION="${GPU_MEMORY_UTILIZATION:-0.4}"
PARAM_OFFLOAD="${PARAM_OFFLOAD:-true}"
OPTIMIZER_OFFLOAD="${OPTIMIZER_OFFLOAD:-true}"
GRADIENT_CHECKPOINTING="${GRADIENT_CHECKPOINTING:-true}"
USE_DYNAMIC_BSZ="${USE_DYNAMIC_BSZ:-true}"
PPO_MAX_TOKEN_LEN_PER_GPU="${PPO_MAX_TOKEN_LEN_PER_GPU:-16384}"

# ---- logging and checkpoints
PROJECT_NAME="${PROJECT_NAME:-hpt-qwen2.5-vl-7b}"
EXPERIMENT_NAME="${EXPERIMENT_NAME:-qwen2.5-vl-7b-slidevqa-hpt}"
LOGGERS="${LOGGERS:-console,wandb}"
LOG_ROOT="${LOG_ROOT:-$PWD/runs}"
export WANDB_DIR="${WANDB_DIR:-$LOG_ROOT}"
CKPT_DIR="${CKPT_DIR:-${CKPT_ROOT:-$PWD/checkpoints}/$PROJECT_NAME/$EXPERIMENT_NAME}"

read -r -a TRAIN_LIST <<< "$TRAIN_FILES"
read -r -a VAL_LIST <<< "$VAL_FILES"
IFS=, read -r -a LOGGER_LIST <<< "$LOGGERS"
hpt_print_only "$@" || hpt_require_files "${TRAIN_LIST[@]}" "${VAL_LIST[@]}"
hpt_wandb_offline_without_login

exec python -m hpt.main \
  actor_rollout_ref.model.path="$(hpt_quote "$MODEL_PATH")" \
  data.train_files="$(hpt_list "${TRAIN_LIST[@]}")" \
  data.val_files="$(hpt_list "${VAL_LIST[@]}")" \
  data.image_key=images \
  data.train_batch_size="$TRAIN_BATCH_SIZE" \
  data.max_prompt_length="$MAX_PROMPT_LENGTH" \
  data.max_response_length="$MAX_RESPONSE_LENGTH" \
  data.filter_overlong_prompts=true \
  algorithm.adv_estimator=grpo \
  actor_rollout_ref.rollout.n="$ROLLOUT_N" \
  actor_rollout_ref.rollout.name=vllm \
  actor_rollout_ref.rollout.tensor_model_parallel_size="$ROLLOUT_TP" \
  actor_rollout_ref.rollout.gpu_memory_utilization="$GPU_MEMORY_UTILIZATION" \
  actor_rollout_ref.actor.strategy=fsdp2 \
  actor_rollout_ref.actor.optim.lr="$LR" \
  actor_rollout_ref.actor.ppo_mini_batch_size="$PPO_MINI_BATCH_SIZE" \
  actor_rollout_ref.actor.use_kl_loss=false \
  actor_rollout_ref.actor.offline_loss_type=nll \
  actor_rollout_ref.actor.sft_loss_coef="$SFT_LOSS_COEF" \
  actor_rollout_ref.actor.fsdp_config.param_offload="$PARAM_OFFLOAD" \
  actor_rollout_ref.actor.fsdp_config.optimizer_offload="$OPTIMIZER_OFFLOAD" \
  actor_rollout_ref.model.enable_gradient_checkpointing="$GRADIENT_CHECKPOINTING" \
  actor_rollout_ref.model.use_remove_padding=true \
  actor_rollout_ref.actor.use_dynamic_bsz="$USE_DYNAMIC_BSZ" \
  actor_rollout_ref.actor.ppo_max_token_len_per_gpu="$PPO_MAX_TOKEN_LEN_PER_GPU" \
  actor_rollout_ref.rollout.log_prob_use_dynamic_bsz="$USE_DYNAMIC_BSZ" \
  actor_rollout_ref.rollout.log_prob_max_token_len_per_gpu="$PPO_MAX_TOKEN_LEN_PER_GPU" \
  trainer.unify_strategy=switch \
  trainer.switch_gate="$SWITCH_GATE" \
  trainer.n_gpus_per_node="$N_GPUS_PER_NODE" \
  trainer.nnodes="$NNODES" \
  trainer.total_training_steps="$TOTAL_TRAINING_STEPS" \
  trainer.test_freq=10 \
  trainer.save_freq=50 \
  trainer.val_before_train=true \
  trainer.project_name="$PROJECT_NAME" \
  trainer.experiment_name="$EXPERIMENT_NAME" \
  trainer.logger="$(hpt_list "${LOGGER_LIST[@]}")" \
  trainer.default_local_dir="$(hpt_quote "$CKPT_DIR")" \
  "$@"
