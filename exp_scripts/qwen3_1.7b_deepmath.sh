#!/usr/bin/env bash
# Seed-003 set-up: Qwen3-1.7B, full-parameter, non-thinking chat template; RL prompts from
# DeepMath-103K with the math verifier as reward (strict mode: only the last \boxed{} counts), SFT
# demonstrations from MetaMathQA; 5 rollouts per prompt, 15 epochs, 4 GPUs; validation on GSM8K, MATH-500
# and AIME 2024 in lenient mode (any answer Math-Verify finds; REWARD_MODE below)
# (val-core/openai/gsm8k/acc/mean@1, val-core/HuggingFaceH4/MATH-500/acc/mean@1, val-core/aime2024/acc/mean@1).
#
# METHOD picks the member of the hybrid family; model, data budget and RL loss are the same for all:
#   hpt    (default) HPT switch gate: a DeepMath prompt with <= SWITCH_GATE successes out of 5 trains on
#          its demonstration (a DeepSeek-R1 solution stored by the preparer) with SFT, the others with
#          GRPO; plus MetaMathQA as a separate SFT stream, SFT_STREAM_BATCH_SIZE demonstrations per step
#   grpo   GRPO only, on DeepMath
#   sft    SFT only, on MetaMathQA (one rollout per prompt is still sampled; it is logged, never trained on)
#   luffy  LUFFY on DeepMath: each prompt's demonstration joins its 5 rollouts in one group (shaped
#          off-policy loss p/(p+0.1) on the demonstration)
#   SFT then GRPO (two stages): exp_scripts/sft_then_grpo.sh
#
# Data: verl parquet, demonstration in extra_info.target. Make it once with hpt's preparers (or run
# this script with PREPARE=1 to make the missing files the chosen METHOD reads), DATA_DIR defaulting
# to $HOME/data/hpt:
#   python -m hpt.data.prepare deepmath --solution shortest --template qwen3_nonthinking --out $DATA_DIR/deepmath_qwen3.parquet
#   python -m hpt.data.prepare metamathqa --mode sft --template qwen3_nonthinking --out $DATA_DIR/metamathqa_sft_qwen3.parquet
#   python -m hpt.data.prepare metamathqa --mode paired --template qwen3_nonthinking --out $DATA_DIR/metamathqa_paired_qwen3.parquet
#   python -m hpt.data.prepare gsm8k --template qwen3_nonthinking --out $DATA_DIR/gsm8k_test_qwen3.parquet
#   python -m hpt.data.prepare math500 --template qwen3_nonthinking --out $DATA_DIR/math500_qwen3.parquet
#   python -m hpt.data.prepare aime2024 --template qwen3_nonthinking --out $DATA_DIR/aime2024_qwen3.parquet
# R1 solutions can be longer than MAX_RESPONSE_LENGTH (the trainer then cuts them and counts them in
# hpt/batch/demo_truncated); `--max-demo-tokens 4096 --tokenizer Qwen/Qwen3-1.7B --long-demos drop`
# on the deepmath line drops those prompts instead.
#
# Run (after `pip install -e .[gpu]`):
#   bash exp_scripts/qwen3_1.7b_deepmath.sh                          # HPT
#   METHOD=grpo bash exp_scripts/qwen3_1.7b_deepmath.sh              # a baseline
#   bash exp_scripts/qwen3_1.7b_deepmath.sh --cfg job                # print the composed config, train nothing
#   bash exp_scripts/qwen3_1.7b_deepmath.sh trainer.test_freq=25     # extra arguments are Hydra overrides (they win)
# 15 epochs of all 103k DeepMath prompts is a long run on 4 GPUs: TRAIN_MAX_SAMPLES=N keeps N of them
# (drawn once with data.seed; the first N with data.shuffle=false).
# Multi-node: exp_scripts/multinode_submit.sh. Logging, metrics, memory: docs/train_on_real_data.md.
set -euo pipefail
cd "$(dirname "$0")/.."
. exp_scripts/lib/recipe_utils.sh
export HYDRA_FULL_ERROR=1

# ---- model and method
MODEL_PATH="${MODEL_PATH:-Qwen/Qwen3-1.7B}"    # Hugging Face id or local directory
METHOD="${METHOD:-hpt}"                         # hpt | grpo | sft | luffy

# ---- data (see the header for the commands that make these files)
DATA_DIR="${DATA_DIR:-$HOME/data/hpt}"
DEEPMATH_FILE="${DEEPMATH_FILE:-$DATA_DIR/deepmath_qwen3.parquet}"
METAMATH_SFT_FILE="${METAMATH_SFT_FILE:-$DATA_DIR/metamathqa_sft_qwen3.parquet}"
METAMATH_PAIRED_FILE="${METAMATH_PAIRED_FILE:-$DATA_DIR/metamathqa_paired_qwen3.parquet}"
GSM8K_FILE="${GSM8K_FILE:-$DATA_DIR/gsm8k_test_qwen3.parquet}"
MATH500_FILE="${MATH500_FILE:-$DATA_DIR/math500_qwen3.parquet}"
AIME2024_FILE="${AIME2024_FILE:-$DATA_DIR/aime2024_qwen3.parquet}"
VAL_FILES="${VAL_FILES:-$GSM8K_FILE $MATH500_FILE $AIME2024_FILE}"  # space-separated
TRAIN_MAX_SAMPLES="${TRAIN_MAX_SAMPLES:--1}"    # -1 = every training prompt; N = a seeded draw of N

# ---- budget (seed-003: n=5, 15 epochs, 4 GPUs)
N_GPUS_PER_NODE="${N_GPUS_PER_NODE:-4}"
NNODES="${NNODES:-1}"
TOTAL_EPOCHS="${TOTAL_EPOCHS:-15}"
TRAIN_BATCH_SIZE="${TRAIN_BATCH_SIZE:-128}"     # prompts per step
PPO_MINI_BATCH_SIZE="${PPO_MINI_BATCH_SIZE:-32}"  # prompts per optimizer step (x n rows)
LR="${LR:-1e-6}"
MAX_PROMPT_LENGTH="${MAX_PROMPT_LENGTH:-1024}"
MAX_RESPONSE_LENGTH="${MAX_RESPONSE_LENGTH:-4096}"  # non-thinking answers; longer ones are cut

# ---- hybrid settings (used by the methods that need them)
SWITCH_GATE="${SWITCH_GATE:-0}"                 # hpt: <= this many successes -> SFT on the demonstration
SFT_LOSS_COEF="${SFT_LOSS_COEF:-1.0}"           # weight of the SFT term
LOSS_NORMALIZATION="${LOSS_NORMALIZATION:-global}"  # global: SFT:RL = SFT_LOSS_COEF x lambda whatever the packing
LAMBDA_SCHEDULE="${LAMBDA_SCHEDULE:-constant}" # hpt: lambda, the demonstrations' weight over training:
                                                #   constant | linear | cosine | warmup_cosine | adaptive
LAMBDA_START="${LAMBDA_START:-1.0}"             # linear/cosine: lambda at step 0; adaptive: when every rollout fails
LAMBDA_END="${LAMBDA_END:-0.0}"                 # linear/cosine: lambda at the end; adaptive: when every rollout succeeds
SFT_STREAM_BATCH_SIZE="${SFT_STREAM_BATCH_SIZE:-32}"  # hpt: MetaMathQA demonstrations added to every step
SFT_STREAM_COEF="${SFT_STREAM_COEF:-1.0}"       # hpt: their weight, times lambda

case "$METHOD" in
  hpt)
    TRAIN_FILES="${TRAIN_FILES:-$DEEPMATH_FILE}"
    SFT_STREAM_FILES="${SFT_STREAM_FILES-$METAMATH_SFT_FILE}"  # set to "" for no stream
    ROLLOUT_N="${ROLLOUT_N:-5}"
    METHOD_ARGS=(
      trainer.unify_strategy=switch
      trainer.switch_gate="$SWITCH_GATE"
      trainer.lambda_schedule.name="$LAMBDA_SCHEDULE"
      trainer.lambda_schedule.start="$LAMBDA_START"
      trainer.lambda_schedule.end="$LAMBDA_END"
      actor_rollout_ref.actor.sft_loss_coef="$SFT_LOSS_COEF"
    ) ;;
  grpo)
    TRAIN_FILES="${TRAIN_FILES:-$DEEPMATH_FILE}"
    SFT_STREAM_FILES="${SFT_STREAM_FILES-}"
    ROLLOUT_N="${ROLLOUT_N:-5}"
    METHOD_ARGS=(trainer.unify_strategy=no) ;;
  sft)
    TRAIN_FILES="${TRAIN_FILES:-$METAMATH_PAIRED_FILE}"
    SFT_STREAM_FILES="${SFT_STREAM_FILES-}"
    ROLLOUT_N="${ROLLOUT_N:-1}"                 # rollouts are only logged (pass rate), never trained on
    METHOD_ARGS=(
      trainer.unify_strategy=sft
      actor_rollout_ref.actor.sft_loss_coef="$SFT_LOSS_COEF"
    ) ;;
  luffy)
    TRAIN_FILES="${TRAIN_FILES:-$DEEPMATH_FILE}"
    SFT_STREAM_FILES="${SFT_STREAM_FILES-}"
    ROLLOUT_N="${ROLLOUT_N:-5}"                 # + the demonstration = groups of 6
    METHOD_ARGS=(
      trainer.unify_strategy=luffy
      actor_rollout_ref.actor.off_policy_loss_type=shaped
      actor_rollout_ref.actor.off_policy_reshape=p_div_p_0.1
    ) ;;
  *) hpt_die "METHOD=$METHOD is not one of hpt, grpo, sft, luffy (SFT then GRPO: exp_scripts/sft_then_grpo.sh)" ;;
esac

# ---- memory (docs/train_on_real_data.md, "Memory"): comfortable for 1.7B on 80 GB GPUs
ROLLOUT_TP="${ROLLOUT_TP:-1}"                   # vLLM tensor parallel size
GPU_MEMORY_UTILIZATION="${GPU_MEMORY_UTILIZATION:-0.6}"  # share of GPU memory vLLM may take
PARAM_OFFLOAD="${PARAM_OFFLOAD:-false}"         # FSDP: parameters on the CPU between uses
OPTIMIZER_OFFLOAD="${OPTIMIZER_OFFLOAD:-false}" # FSDP: optimizer state on the CPU
GRADIENT_CHECKPOINTING="${GRADIENT_CHECKPOINTING:-true}"
USE_DYNAMIC_BSZ="${USE_DYNAMIC_BSZ:-true}"      # pack micro-batches by tokens instead of rows
PPO_MAX_TOKEN_LEN_PER_GPU="${PPO_MAX_TOKEN_LEN_PER_GPU:-$(( (MAX_PROMPT_LENGTH + MAX_RESPONSE_LENGTH) * 4 ))}"
LOG_PROB_MAX_TOKEN_LEN_PER_GPU="${LOG_PROB_MAX_TOKEN_LEN_PER_GPU:-$(( PPO_MAX_TOKEN_LEN_PER_GPU * 2 ))}"

# ---- reward (README "Rewards"): DeepMath (and MetaMathQA for METHOD=sft) training rows are scored in strict mode (only the last
# \boxed{} counts: the format the qwen3_nonthinking prompts ask for, as HPT's reward reads it), the
# GSM8K / MATH-500 / AIME 2024 validation rows in lenient mode (any answer Math-Verify finds): each data source's
# default mode. REWARD_MODE=strict|lenient sets one mode for every row.
REWARD_MODE="${REWARD_MODE:-}"
REWARD_ARGS=()
if [ -n "$REWARD_MODE" ]; then REWARD_ARGS+=("+reward.custom_reward_function.reward_kwargs.mode=$REWARD_MODE"); fi

# ---- logging and checkpoints
PROJECT_NAME="${PROJECT_NAME:-hpt-qwen3-1.7b}"
EXPERIMENT_NAME="${EXPERIMENT_NAME:-qwen3-1.7b-deepmath-$METHOD}"
LOGGERS="${LOGGERS:-console,wandb}"             # comma-separated: console, wandb, tensorboard, file, ...
LOG_ROOT="${LOG_ROOT:-$PWD/runs}"
export WANDB_DIR="${WANDB_DIR:-$LOG_ROOT}"      # W&B writes $WANDB_DIR/wandb/
export TENSORBOARD_DIR="${TENSORBOARD_DIR:-$LOG_ROOT/tensorboard/$PROJECT_NAME/$EXPERIMENT_NAME}"
CKPT_DIR="${CKPT_DIR:-${CKPT_ROOT:-$PWD/checkpoints}/$PROJECT_NAME/$EXPERIMENT_NAME}"
SAVE_FREQ="${SAVE_FREQ:-200}"                   # steps between checkpoints (the last step is always saved)
TEST_FREQ="${TEST_FREQ:-50}"                    # steps between validations
MAX_CKPT_TO_KEEP="${MAX_CKPT_TO_KEEP:-2}"
SAVE_HF_MODEL="${SAVE_HF_MODEL:-1}"             # 1: every checkpoint (the last step included) also holds global_step_N/actor/huggingface, the model `hpt eval` loads; 0 saves disk
LOG_VAL_GENERATIONS="${LOG_VAL_GENERATIONS:-8}" # validation samples shown as a table on W&B / TensorBoard
if [ "$SAVE_HF_MODEL" = 1 ]; then SAVE_CONTENTS="[model,optimizer,extra,hf_model]"; else SAVE_CONTENTS="[model,optimizer,extra]"; fi

read -r -a TRAIN_LIST <<< "$TRAIN_FILES"
read -r -a VAL_LIST <<< "$VAL_FILES"
read -r -a STREAM_LIST <<< "$SFT_STREAM_FILES"
IFS=, read -r -a LOGGER_LIST <<< "$LOGGERS"

NEEDED_FILES=("${TRAIN_LIST[@]}" "${VAL_LIST[@]}" "${STREAM_LIST[@]}")
hpt_prepare "$DEEPMATH_FILE" deepmath --solution shortest --template qwen3_nonthinking
hpt_prepare "$METAMATH_SFT_FILE" metamathqa --mode sft --template qwen3_nonthinking
hpt_prepare "$METAMATH_PAIRED_FILE" metamathqa --mode paired --template qwen3_nonthinking
hpt_prepare "$GSM8K_FILE" gsm8k --template qwen3_nonthinking
hpt_prepare "$MATH500_FILE" math500 --template qwen3_nonthinking
hpt_prepare "$AIME2024_FILE" aime2024 --template qwen3_nonthinking
hpt_print_only "$@" || hpt_require_files "${NEEDED_FILES[@]}"
hpt_wandb_offline_without_login

# Non-thinking: verl hands data.apply_chat_template_kwargs to the training and validation datasets
# (prompt-length filter) and to the agent loop that renders every rollout and validation prompt; hpt's
# SFT stream renders its prompts the same way.
exec python -m hpt.main \
  actor_rollout_ref.model.path="$(hpt_quote "$MODEL_PATH")" \
  data.train_files="$(hpt_list "${TRAIN_LIST[@]}")" \
  data.val_files="$(hpt_list "${VAL_LIST[@]}")" \
  data.train_max_samples="$TRAIN_MAX_SAMPLES" \
  data.train_batch_size="$TRAIN_BATCH_SIZE" \
  data.max_prompt_length="$MAX_PROMPT_LENGTH" \
  data.max_response_length="$MAX_RESPONSE_LENGTH" \
  data.filter_overlong_prompts=true \
  ++data.apply_chat_template_kwargs.enable_thinking=false \
  data.sft_stream.train_files="$(hpt_list "${STREAM_LIST[@]}")" \
  data.sft_stream.batch_size="$SFT_STREAM_BATCH_SIZE" \
  data.sft_stream.coef="$SFT_STREAM_COEF" \
  algorithm.adv_estimator=grpo \
  actor_rollout_ref.rollout.n="$ROLLOUT_N" \
  actor_rollout_ref.rollout.name=vllm \
  actor_rollout_ref.rollout.temperature=1.0 \
  actor_rollout_ref.rollout.val_kwargs.n=1 \
  actor_rollout_ref.rollout.val_kwargs.do_sample=false \
  actor_rollout_ref.rollout.val_kwargs.temperature=0 \
  actor_rollout_ref.actor.strategy=fsdp2 \
  actor_rollout_ref.actor.optim.lr="$LR" \
  actor_rollout_ref.actor.ppo_mini_batch_size="$PPO_MINI_BATCH_SIZE" \
  actor_rollout_ref.actor.use_kl_loss=false \
  actor_rollout_ref.actor.entropy_coeff=0 \
  actor_rollout_ref.actor.loss_normalization="$LOSS_NORMALIZATION" \
  actor_rollout_ref.actor.checkpoint.save_contents="$SAVE_CONTENTS" \
  actor_rollout_ref.actor.checkpoint.load_contents="[model,optimizer,extra]" \
  actor_rollout_ref.rollout.tensor_model_parallel_size="$ROLLOUT_TP" \
  actor_rollout_ref.rollout.gpu_memory_utilization="$GPU_MEMORY_UTILIZATION" \
  actor_rollout_ref.actor.fsdp_config.param_offload="$PARAM_OFFLOAD" \
  actor_rollout_ref.actor.fsdp_config.optimizer_offload="$OPTIMIZER_OFFLOAD" \
  actor_rollout_ref.model.enable_gradient_checkpointing="$GRADIENT_CHECKPOINTING" \
  actor_rollout_ref.model.use_remove_padding=true \
  actor_rollout_ref.actor.use_dynamic_bsz="$USE_DYNAMIC_BSZ" \
  actor_rollout_ref.actor.ppo_max_token_len_per_gpu="$PPO_MAX_TOKEN_LEN_PER_GPU" \
  actor_rollout_ref.rollout.log_prob_use_dynamic_bsz="$USE_DYNAMIC_BSZ" \
  actor_rollout_ref.rollout.log_prob_max_token_len_per_gpu="$LOG_PROB_MAX_TOKEN_LEN_PER_GPU" \
  trainer.n_gpus_per_node="$N_GPUS_PER_NODE" \
  trainer.nnodes="$NNODES" \
  trainer.total_epochs="$TOTAL_EPOCHS" \
  trainer.test_freq="$TEST_FREQ" \
  trainer.save_freq="$SAVE_FREQ" \
  trainer.max_actor_ckpt_to_keep="$MAX_CKPT_TO_KEEP" \
  trainer.val_before_train=true \
  trainer.log_val_generations="$LOG_VAL_GENERATIONS" \
  trainer.project_name="$PROJECT_NAME" \
  trainer.experiment_name="$EXPERIMENT_NAME" \
  trainer.logger="$(hpt_list "${LOGGER_LIST[@]}")" \
  trainer.default_local_dir="$(hpt_quote "$CKPT_DIR")" \
  "${REWARD_ARGS[@]}" \
  "${METHOD_ARGS[@]}" \
  "$@"
