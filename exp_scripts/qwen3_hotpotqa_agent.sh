#!/usr/bin/env bash
# A search agent on HotpotQA: Qwen3-1.7B (non-thinking) calls a BM25 `search` tool over the HotpotQA
# paragraphs through verl's tool agent loop; reward = exact match of <answer>...</answer> (hpt.rewards.qa).
#
# METHOD picks the member of the hybrid family:
#   hpt   (default) HPT switch: a question with <= SWITCH_GATE successes out of ROLLOUT_N trains on its
#         demonstrated trajectory (search each supporting paragraph's title, read it, answer; only the
#         assistant turns are trained, tool results are context), the others with GRPO
#   grpo  GRPO only
#   luffy LUFFY: the demonstrated trajectory joins each group (shaped off-policy loss)
#
# Data, made once from local HotpotQA json (no network needed; PREPARE=1 runs these when files are missing):
#   python -m hpt.data.prepare hotpotqa --source $HOTPOT_TRAIN_JSON --out $DATA_DIR/hotpotqa_train.parquet \
#       --max-demo-tokens $MAX_RESPONSE_LENGTH --tokenizer $MODEL_PATH
#   python -m hpt.data.prepare hotpotqa --source $HOTPOT_DEV_JSON --split validation --out $DATA_DIR/hotpotqa_dev.parquet
#   python -m hpt.tools.build_index --corpus $DATA_DIR/hotpotqa_train.parquet.corpus.jsonl \
#       --corpus $DATA_DIR/hotpotqa_dev.parquet.corpus.jsonl --out $DATA_DIR/hotpotqa_index
#
# The search tool loads the index in every agent-loop worker (RETRIEVAL_URL unset), or calls one shared
# retrieval server: start `INDEX_DIR=$DATA_DIR/hotpotqa_index bash exp_scripts/retrieval_server.sh` on a
# host the workers reach and run this script with RETRIEVAL_URL=http://HOST:8000.
#
# Run (after `pip install -e .[gpu]`):
#   bash exp_scripts/qwen3_hotpotqa_agent.sh                       # HPT on N_GPUS_PER_NODE GPUs
#   METHOD=grpo bash exp_scripts/qwen3_hotpotqa_agent.sh           # the baseline
#   bash exp_scripts/qwen3_hotpotqa_agent.sh trainer.test_freq=25  # extra arguments are Hydra overrides
set -euo pipefail
cd "$(dirname "$0")/.."
. exp_scripts/lib/recipe_utils.sh
export HYDRA_FULL_ERROR=1

MODEL_PATH="${MODEL_PATH:-Qwen/Qwen3-1.7B}"
METHOD="${METHOD:-hpt}"
DATA_DIR="${DATA_DIR:-$HOME/data/hpt}"
HOTPOT_TRAIN_JSON="${HOTPOT_TRAIN_JSON:-$DATA_DIR/hotpot_train_v1.1.json}"
HOTPOT_DEV_JSON="${HOTPOT_DEV_JSON:-$DATA_DIR/hotpot_dev_distractor_v1.json}"
TRAIN_FILE="${TRAIN_FILE:-$DATA_DIR/hotpotqa_train.parquet}"
VAL_FILE="${VAL_FILE:-$DATA_DIR/hotpotqa_dev.parquet}"
INDEX_DIR="${INDEX_DIR:-$DATA_DIR/hotpotqa_index}"
RETRIEVAL_URL="${RETRIEVAL_URL:-}"             # set: use a running retrieval server instead of INDEX_DIR
TOP_K="${TOP_K:-3}"                             # paragraphs per search
TRAIN_MAX_SAMPLES="${TRAIN_MAX_SAMPLES:--1}"
VAL_MAX_SAMPLES="${VAL_MAX_SAMPLES:-512}"

N_GPUS_PER_NODE="${N_GPUS_PER_NODE:-4}"
NNODES="${NNODES:-1}"
TOTAL_EPOCHS="${TOTAL_EPOCHS:-1}"
TRAIN_BATCH_SIZE="${TRAIN_BATCH_SIZE:-128}"
PPO_MINI_BATCH_SIZE="${PPO_MINI_BATCH_SIZE:-32}"
ROLLOUT_N="${ROLLOUT_N:-5}"
LR="${LR:-1e-6}"
MAX_PROMPT_LENGTH="${MAX_PROMPT_LENGTH:-512}"
MAX_RESPONSE_LENGTH="${MAX_RESPONSE_LENGTH:-2048}"  # every call, tool result and answer of a trajectory
MAX_ASSISTANT_TURNS="${MAX_ASSISTANT_TURNS:-5}"
MAX_TOOL_RESPONSE_LENGTH="${MAX_TOOL_RESPONSE_LENGTH:-2048}"  # characters; verl's default 256 cuts paragraphs
SWITCH_GATE="${SWITCH_GATE:-0}"
GPU_MEMORY_UTILIZATION="${GPU_MEMORY_UTILIZATION:-0.6}"

case "$METHOD" in
  hpt) METHOD_ARGS=(trainer.unify_strategy=switch trainer.switch_gate="$SWITCH_GATE") ;;
  grpo) METHOD_ARGS=(trainer.unify_strategy=no) ;;
  luffy) METHOD_ARGS=(trainer.unify_strategy=luffy actor_rollout_ref.actor.off_policy_loss_type=shaped
                      actor_rollout_ref.actor.off_policy_reshape=p_div_p_0.1) ;;
  *) hpt_die "METHOD=$METHOD is not one of hpt, grpo, luffy" ;;
esac

PROJECT_NAME="${PROJECT_NAME:-hpt-agent}"
EXPERIMENT_NAME="${EXPERIMENT_NAME:-qwen3-1.7b-hotpotqa-$METHOD}"
LOGGERS="${LOGGERS:-console,wandb}"
IFS=, read -r -a LOGGER_LIST <<< "$LOGGERS"
CKPT_DIR="${CKPT_DIR:-${CKPT_ROOT:-$PWD/checkpoints}/$PROJECT_NAME/$EXPERIMENT_NAME}"

NEEDED_FILES=("$TRAIN_FILE" "$VAL_FILE")
hpt_prepare "$TRAIN_FILE" hotpotqa --source "$HOTPOT_TRAIN_JSON" --max-demo-tokens "$MAX_RESPONSE_LENGTH" \
  --tokenizer "$MODEL_PATH"
hpt_prepare "$VAL_FILE" hotpotqa --source "$HOTPOT_DEV_JSON" --split validation
if [ "${PREPARE:-0}" = 1 ] && [ -z "$RETRIEVAL_URL" ] && [ ! -f "$INDEX_DIR/hpt_index.json" ]; then
  python -m hpt.tools.build_index --corpus "$TRAIN_FILE.corpus.jsonl" --corpus "$VAL_FILE.corpus.jsonl" --out "$INDEX_DIR"
fi
if ! hpt_print_only "$@"; then
  hpt_require_files "${NEEDED_FILES[@]}"
  [ -n "$RETRIEVAL_URL" ] || [ -f "$INDEX_DIR/hpt_index.json" ] || hpt_die "no search index at $INDEX_DIR:" \
    "build it with the build_index command in the header of $0, run with PREPARE=1, or set RETRIEVAL_URL"
fi
hpt_wandb_offline_without_login

# The tool config (JSON is YAML): a local index, or the shared retrieval server.
TOOL_CONFIG="${TOOL_CONFIG:-$CKPT_DIR/search_tool.yaml}"
mkdir -p "$(dirname "$TOOL_CONFIG")"
if [ -n "$RETRIEVAL_URL" ]; then BACKEND="\"retrieval_url\": \"$RETRIEVAL_URL\""; else BACKEND="\"index_dir\": \"$INDEX_DIR\""; fi
cat > "$TOOL_CONFIG" <<EOF
{"tools": [{"class_name": "hpt.tools.search.SearchTool",
            "config": {"type": "native", $BACKEND, "top_k": $TOP_K}}]}
EOF

exec python -m hpt.main \
  actor_rollout_ref.model.path="$(hpt_quote "$MODEL_PATH")" \
  data.train_files="$(hpt_list "$TRAIN_FILE")" \
  data.val_files="$(hpt_list "$VAL_FILE")" \
  data.train_max_samples="$TRAIN_MAX_SAMPLES" \
  data.val_max_samples="$VAL_MAX_SAMPLES" \
  data.train_batch_size="$TRAIN_BATCH_SIZE" \
  data.max_prompt_length="$MAX_PROMPT_LENGTH" \
  data.max_response_length="$MAX_RESPONSE_LENGTH" \
  data.filter_overlong_prompts=true \
  ++data.apply_chat_template_kwargs.enable_thinking=false \
  algorithm.adv_estimator=grpo \
  actor_rollout_ref.rollout.n="$ROLLOUT_N" \
  actor_rollout_ref.rollout.name=vllm \
  actor_rollout_ref.rollout.gpu_memory_utilization="$GPU_MEMORY_UTILIZATION" \
  actor_rollout_ref.rollout.val_kwargs.do_sample=false \
  actor_rollout_ref.rollout.multi_turn.tool_config_path="$(hpt_quote "$TOOL_CONFIG")" \
  actor_rollout_ref.rollout.multi_turn.format=hermes \
  actor_rollout_ref.rollout.multi_turn.max_assistant_turns="$MAX_ASSISTANT_TURNS" \
  actor_rollout_ref.rollout.multi_turn.max_tool_response_length="$MAX_TOOL_RESPONSE_LENGTH" \
  actor_rollout_ref.actor.strategy=fsdp2 \
  actor_rollout_ref.actor.optim.lr="$LR" \
  actor_rollout_ref.actor.ppo_mini_batch_size="$PPO_MINI_BATCH_SIZE" \
  actor_rollout_ref.actor.use_kl_loss=false \
  actor_rollout_ref.actor.entropy_coeff=0 \
  actor_rollout_ref.actor.use_dynamic_bsz=true \
  actor_rollout_ref.actor.ppo_max_token_len_per_gpu=$(( (MAX_PROMPT_LENGTH + MAX_RESPONSE_LENGTH) * 4 )) \
  actor_rollout_ref.model.enable_gradient_checkpointing=true \
  "${METHOD_ARGS[@]}" \
  trainer.logger="$(hpt_list "${LOGGER_LIST[@]}")" \
  trainer.project_name="$PROJECT_NAME" \
  trainer.experiment_name="$EXPERIMENT_NAME" \
  trainer.default_local_dir="$(hpt_quote "$CKPT_DIR")" \
  trainer.n_gpus_per_node="$N_GPUS_PER_NODE" \
  trainer.nnodes="$NNODES" \
  trainer.total_epochs="$TOTAL_EPOCHS" \
  trainer.save_freq="${SAVE_FREQ:-100}" \
  trainer.test_freq="${TEST_FREQ:-25}" \
  "$@"
