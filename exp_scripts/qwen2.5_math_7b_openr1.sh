#!/usr/bin/env bash
# The HPT paper's set-up: Qwen2.5-Math-7B trained on OpenR1-Math prompts whose demonstrations are
# DeepSeek-R1 solutions, 8 rollouts per prompt, switch gate 0 (a prompt none of whose 8 rollouts is
# correct trains on its demonstration with SFT, every other prompt with GRPO), 500 steps of 128
# prompts on 8 GPUs; validation on MATH-500 and AIME 2024 as mean@8 at temperature 0.6. Reward: the
# math verifier in strict mode on OpenR1 (the last \boxed{}, as HPT's reward), lenient on the validation
# sets (REWARD_MODE below).
# RL term as in the original code: no clipping (policy_loss.loss_mode=unclipped), sum over tokens
# divided by the response budget (seq-mean-token-sum-norm, loss_scale_factor = MAX_RESPONSE_LENGTH),
# no std normalisation of GRPO advantages, entropy bonus 0.001, no KL.
# Loss balance: LOSS_NORMALIZATION=original (default for hpt, grpo, luffy, srft) reproduces the original
# code's per-micro-batch sums (RL sum/L not divided by rows, SFT token mean per micro-batch, LUFFY's one
# shared sum/L); global makes SFT:RL exactly SFT_LOSS_COEF whatever the packing (docs/from_original_hpt.md
# gives both balances in numbers). sft defaults to global: a plain SFT token mean over the batch.
#
# METHOD picks the member of the family (same model, data and step budget):
#   hpt    (default) switch gate SWITCH_GATE, SFT on the demonstration, LR 5e-6 (the paper's)
#   grpo   GRPO only, LR 1e-6
#   sft    SFT only on the demonstrations (one rollout per prompt is sampled and only logged), LR 5e-6
#   luffy  LUFFY: 7 rollouts + the demonstration per group, shaped off-policy loss p/(p+0.1), LR 1e-6
#   srft   SRFT (the HPT repository's baseline, train_srft.sh): LUFFY's groups, the demonstration also
#          trained with SFT weighted 0.5*exp(-H), rollouts weighted 0.1*exp(H) / -1, LR 1e-6
#   SFT then GRPO (two stages): RECIPE=qwen2.5_math_7b_openr1.sh bash exp_scripts/sft_then_grpo.sh
#
# Context length: Qwen2.5-Math-7B's config.json allows 4096 positions, less than the 1024 + 8192
# tokens used here (vLLM refuses to start). The original runs used a copy of the model whose
# config.json raises max_position_embeddings (and rope_theta); make such a copy and point MODEL_PATH
# at it, or set MAX_RESPONSE_LENGTH=3072 to stay within the stock model.
#
# Data: verl parquet, demonstration in extra_info.target; make it once (or run with PREPARE=1).
# The prompt is one user turn (question + "final answer in \boxed{}") rendered with the model's own
# chat template, as in the original runs, which dropped OpenR1's system prompt:
#   python -m hpt.data.prepare openr1 --template boxed_instruct --out $DATA_DIR/openr1_boxed.parquet
#   python -m hpt.data.prepare math500 --template boxed_instruct --out $DATA_DIR/math500_boxed.parquet
#   python -m hpt.data.prepare aime2024 --template boxed_instruct --out $DATA_DIR/aime2024_boxed.parquet
# (DATA_DIR defaults to $HOME/data/hpt.) The default OpenR1 source is LUFFY's 46k subset of traces of
# at most 8192 tokens; a trace that still does not fit MAX_RESPONSE_LENGTH with its EOS is cut by the
# trainer and counted in hpt/batch/demo_truncated (add `--max-demo-tokens 8192 --tokenizer <model dir>
# --long-demos drop` to the openr1 line to drop such prompts instead).
#
# Run (after `pip install -e .[gpu]`):
#   MODEL_PATH=/models/Qwen2.5-Math-7B-ctx16k bash exp_scripts/qwen2.5_math_7b_openr1.sh
#   METHOD=luffy bash exp_scripts/qwen2.5_math_7b_openr1.sh
#   bash exp_scripts/qwen2.5_math_7b_openr1.sh --cfg job     # print the composed config, train nothing
# Extra arguments are Hydra overrides and win over the script's. Two nodes of 8 GPUs:
#   RECIPE=qwen2.5_math_7b_openr1.sh NNODES=2 bash exp_scripts/multinode_submit.sh
set -euo pipefail
cd "$(dirname "$0")/.."
. exp_scripts/lib/recipe_utils.sh
export HYDRA_FULL_ERROR=1

# ---- model and method
MODEL_PATH="${MODEL_PATH:-Qwen/Qwen2.5-Math-7B}"  # Hugging Face id or local directory (see "Context length")
METHOD="${METHOD:-hpt}"                           # hpt | grpo | sft | luffy | srft

# ---- data
DATA_DIR="${DATA_DIR:-$HOME/data/hpt}"
OPENR1_FILE="${OPENR1_FILE:-$DATA_DIR/openr1_boxed.parquet}"
MATH500_FILE="${MATH500_FILE:-$DATA_DIR/math500_boxed.parquet}"
AIME2024_FILE="${AIME2024_FILE:-$DATA_DIR/aime2024_boxed.parquet}"
TRAIN_FILES="${TRAIN_FILES:-$OPENR1_FILE}"        # space-separated
VAL_FILES="${VAL_FILES:-$MATH500_FILE $AIME2024_FILE}"
TRAIN_MAX_SAMPLES="${TRAIN_MAX_SAMPLES:--1}"      # -1 = every training prompt; N = a seeded draw of N

# ---- budget (the paper's: 500 steps x 128 prompts, 8 GPUs)
N_GPUS_PER_NODE="${N_GPUS_PER_NODE:-8}"
NNODES="${NNODES:-1}"
TOTAL_TRAINING_STEPS="${TOTAL_TRAINING_STEPS:-500}"
TRAIN_BATCH_SIZE="${TRAIN_BATCH_SIZE:-128}"
PPO_MINI_BATCH_SIZE="${PPO_MINI_BATCH_SIZE:-64}"
MAX_PROMPT_LENGTH="${MAX_PROMPT_LENGTH:-1024}"
MAX_RESPONSE_LENGTH="${MAX_RESPONSE_LENGTH:-8192}"
ENTROPY_COEFF="${ENTROPY_COEFF:-0.001}"
VAL_N="${VAL_N:-8}"                               # validation samples per prompt (mean@VAL_N)
VAL_TEMPERATURE="${VAL_TEMPERATURE:-0.6}"
VAL_TOP_P="${VAL_TOP_P:-0.95}"

# ---- hybrid settings
SWITCH_GATE="${SWITCH_GATE:-0}"
SFT_LOSS_COEF="${SFT_LOSS_COEF:-1.0}"             # the paper's 7B value (0.3 for Qwen2.5-Math-1.5B)

case "$METHOD" in
  hpt)
    LR="${LR:-5e-6}"
    ROLLOUT_N="${ROLLOUT_N:-8}"
    METHOD_ARGS=(
      trainer.unify_strategy=switch
      trainer.switch_gate="$SWITCH_GATE"
      actor_rollout_ref.actor.offline_loss_type=nll
      actor_rollout_ref.actor.sft_loss_coef="$SFT_LOSS_COEF"
    ) ;;
  grpo)
    LR="${LR:-1e-6}"
    ROLLOUT_N="${ROLLOUT_N:-8}"
    METHOD_ARGS=(trainer.unify_strategy=no) ;;
  sft)
    LR="${LR:-5e-6}"
    ROLLOUT_N="${ROLLOUT_N:-1}"                   # rollouts are only logged, never trained on
    LOSS_NORMALIZATION="${LOSS_NORMALIZATION:-global}"
    METHOD_ARGS=(
      trainer.unify_strategy=sft
      actor_rollout_ref.actor.offline_loss_type=nll
      actor_rollout_ref.actor.sft_loss_coef="$SFT_LOSS_COEF"
    ) ;;
  luffy)
    LR="${LR:-1e-6}"
    ROLLOUT_N="${ROLLOUT_N:-7}"                   # + the demonstration = LUFFY's groups of 8
    METHOD_ARGS=(
      trainer.unify_strategy=luffy
      actor_rollout_ref.actor.off_policy_loss_type=shaped
      actor_rollout_ref.actor.off_policy_reshape=p_div_p_0.1
    ) ;;
  srft)
    LR="${LR:-1e-6}"
    ROLLOUT_N="${ROLLOUT_N:-7}"                   # + the demonstration = groups of 8
    METHOD_ARGS=(
      trainer.unify_strategy=srft
      actor_rollout_ref.actor.calculate_entropy=true
      actor_rollout_ref.actor.off_policy_loss_type=shaped
      actor_rollout_ref.actor.off_policy_reshape=p_div_p_0.1
    ) ;;
  *) hpt_die "METHOD=$METHOD is not one of hpt, grpo, sft, luffy, srft (SFT then GRPO: exp_scripts/sft_then_grpo.sh)" ;;
esac
LOSS_NORMALIZATION="${LOSS_NORMALIZATION:-original}"  # original | global (see the header)

# ---- memory (docs/train_on_real_data.md, "Memory"): 7B full-parameter on 8 x 80 GB
ROLLOUT_TP="${ROLLOUT_TP:-2}"
GPU_MEMORY_UTILIZATION="${GPU_MEMORY_UTILIZATION:-0.6}"
PARAM_OFFLOAD="${PARAM_OFFLOAD:-false}"
OPTIMIZER_OFFLOAD="${OPTIMIZER_OFFLOAD:-false}"
GRADIENT_CHECKPOINTING="${GRADIENT_CHECKPOINTING:-true}"
USE_DYNAMIC_BSZ="${USE_DYNAMIC_BSZ:-true}"
PPO_MAX_TOKEN_LEN_PER_GPU="${PPO_MAX_TOKEN_LEN_PER_GPU:-32768}"
LOG_PROB_MAX_TOKEN_LEN_PER_GPU="${LOG_PROB_MAX_TOKEN_LEN_PER_GPU:-$PPO_MAX_TOKEN_LEN_PER_GPU}"

# ---- reward (README "Rewards"): OpenR1 training rows are scored in strict mode (only the last
# \boxed{} counts: the format the boxed_instruct prompts ask for, as HPT's reward reads it), the
# MATH-500 / AIME 2024 validation rows in lenient mode (any answer Math-Verify finds): each data source's
# default mode. REWARD_MODE=strict|lenient sets one mode for every row.
REWARD_MODE="${REWARD_MODE:-}"
REWARD_ARGS=()
if [ -n "$REWARD_MODE" ]; then REWARD_ARGS+=("+reward.custom_reward_function.reward_kwargs.mode=$REWARD_MODE"); fi

# ---- logging and checkpoints
PROJECT_NAME="${PROJECT_NAME:-hpt-qwen2.5-math-7b}"
EXPERIMENT_NAME="${EXPERIMENT_NAME:-qwen2.5-math-7b-openr1-$METHOD}"
LOGGERS="${LOGGERS:-console,wandb}"
LOG_ROOT="${LOG_ROOT:-$PWD/runs}"
export WANDB_DIR="${WANDB_DIR:-$LOG_ROOT}"
export TENSORBOARD_DIR="${TENSORBOARD_DIR:-$LOG_ROOT/tensorboard/$PROJECT_NAME/$EXPERIMENT_NAME}"
CKPT_DIR="${CKPT_DIR:-${CKPT_ROOT:-$PWD/checkpoints}/$PROJECT_NAME/$EXPERIMENT_NAME}"
SAVE_FREQ="${SAVE_FREQ:-50}"
TEST_FREQ="${TEST_FREQ:-10}"
MAX_CKPT_TO_KEEP="${MAX_CKPT_TO_KEEP:-2}"
SAVE_HF_MODEL="${SAVE_HF_MODEL:-1}"             # 1: checkpoints also hold actor/huggingface, the model `hpt eval` loads
LOG_VAL_GENERATIONS="${LOG_VAL_GENERATIONS:-8}"
if [ "$SAVE_HF_MODEL" = 1 ]; then SAVE_CONTENTS="[model,optimizer,extra,hf_model]"; else SAVE_CONTENTS="[model,optimizer,extra]"; fi

read -r -a TRAIN_LIST <<< "$TRAIN_FILES"
read -r -a VAL_LIST <<< "$VAL_FILES"
IFS=, read -r -a LOGGER_LIST <<< "$LOGGERS"

NEEDED_FILES=("${TRAIN_LIST[@]}" "${VAL_LIST[@]}")
hpt_prepare "$OPENR1_FILE" openr1 --template boxed_instruct
hpt_prepare "$MATH500_FILE" math500 --template boxed_instruct
hpt_prepare "$AIME2024_FILE" aime2024 --template boxed_instruct
hpt_print_only "$@" || hpt_require_files "${NEEDED_FILES[@]}"
hpt_wandb_offline_without_login

exec python -m hpt.main \
  actor_rollout_ref.model.path="$(hpt_quote "$MODEL_PATH")" \
  data.train_files="$(hpt_list "${TRAIN_LIST[@]}")" \
  data.val_files="$(hpt_list "${VAL_LIST[@]}")" \
  data.train_max_samples="$TRAIN_MAX_SAMPLES" \
  data.train_batch_size="$TRAIN_BATCH_SIZE" \
  data.max_prompt_length="$MAX_PROMPT_LENGTH" \
  data.max_response_length="$MAX_RESPONSE_LENGTH" \
  data.filter_overlong_prompts=true \
  algorithm.adv_estimator=grpo \
  algorithm.norm_adv_by_std_in_grpo=false \
  actor_rollout_ref.rollout.n="$ROLLOUT_N" \
  actor_rollout_ref.rollout.name=vllm \
  actor_rollout_ref.rollout.temperature=1.0 \
  actor_rollout_ref.rollout.val_kwargs.n="$VAL_N" \
  actor_rollout_ref.rollout.val_kwargs.do_sample=true \
  actor_rollout_ref.rollout.val_kwargs.temperature="$VAL_TEMPERATURE" \
  actor_rollout_ref.rollout.val_kwargs.top_p="$VAL_TOP_P" \
  actor_rollout_ref.actor.strategy=fsdp2 \
  actor_rollout_ref.actor.optim.lr="$LR" \
  actor_rollout_ref.actor.optim.clip_grad=1.0 \
  actor_rollout_ref.actor.ppo_mini_batch_size="$PPO_MINI_BATCH_SIZE" \
  actor_rollout_ref.actor.policy_loss.loss_mode=unclipped \
  actor_rollout_ref.actor.loss_agg_mode=seq-mean-token-sum-norm \
  actor_rollout_ref.actor.loss_scale_factor="$MAX_RESPONSE_LENGTH" \
  actor_rollout_ref.actor.loss_normalization="$LOSS_NORMALIZATION" \
  actor_rollout_ref.actor.entropy_coeff="$ENTROPY_COEFF" \
  actor_rollout_ref.actor.use_kl_loss=false \
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
  trainer.total_training_steps="$TOTAL_TRAINING_STEPS" \
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
