#!/usr/bin/env bash
# Run a recipe on a multi-node Ray cluster with `ray job submit`.
#
# 1. Every node has this checkout at the same path (HPT_HOME) with `pip install -e .[gpu]` done in
#    the Python environment that starts Ray, and reaches the model, the data and CKPT_ROOT at the same
#    paths (a shared file system; checkpoints must be shared for resuming). Export what the workers
#    need BEFORE `ray start` on each node, since Ray workers inherit it: W&B credentials
#    (WANDB_API_KEY, or `wandb login`), HF_HOME, NCCL_SOCKET_IFNAME / GLOO_SOCKET_IFNAME if the nodes
#    have several network interfaces.
# 2. Start the cluster:
#      head node:    ray start --head --port=6379 --dashboard-host=0.0.0.0
#      other nodes:  ray start --address=<head ip>:6379
#    `ray status` on the head should then list NNODES x N_GPUS_PER_NODE GPUs.
# 3. Submit from any machine that reaches the head's dashboard port (8265):
#      RAY_ADDRESS=http://<head ip>:8265 NNODES=2 bash exp_scripts/multinode_submit.sh
#      RAY_ADDRESS=... RECIPE=qwen3_1.7b_deepmath.sh METHOD=grpo NNODES=2 N_GPUS_PER_NODE=4 bash exp_scripts/multinode_submit.sh
#    The logs stream here (NO_WAIT=1 returns at once); `ray job logs -f <id>` follows a job again,
#    `ray job stop <id>` stops it.
#
# The job's entrypoint is the recipe itself, run on the head node with NNODES and N_GPUS_PER_NODE;
# every environment variable the recipe reads (its ${NAME:-default} knobs, e.g. METHOD, MODEL_PATH,
# DATA_DIR, LOGGERS) that is set here, plus W&B/Hugging Face settings (FORWARD_ENV), travels with the
# job as runtime_env env_vars, which the recipe and every Ray worker of the job see. Secrets are not
# forwarded by default (they would show in the job's description): see step 1.
# Extra arguments are Hydra overrides for the recipe.
# HPT_DRY_RUN=1 prints the `ray job submit` command, then the recipe's composed config (run here
# with --cfg job), and submits nothing.
set -euo pipefail
cd "$(dirname "$0")/.."
. exp_scripts/lib/recipe_utils.sh

RAY_ADDRESS="${RAY_ADDRESS:-http://127.0.0.1:8265}"  # the head's job server (dashboard port)
RECIPE="${RECIPE:-qwen2.5_math_7b_openr1.sh}"      # a recipe in exp_scripts/
NNODES="${NNODES:-2}"
N_GPUS_PER_NODE="${N_GPUS_PER_NODE:-8}"
HPT_HOME="${HPT_HOME:-$PWD}"                       # this checkout's path on the cluster's nodes
SUBMISSION_ID="${SUBMISSION_ID:-hpt-$(basename "$RECIPE" .sh)-$(date +%Y%m%d-%H%M%S)}"
NO_WAIT="${NO_WAIT:-0}"                            # 1: submit and return without streaming the logs
FORWARD_ENV="${FORWARD_ENV:-PREPARE WANDB_MODE WANDB_PROJECT WANDB_ENTITY WANDB_RUN_GROUP WANDB_TAGS HF_HOME HF_HUB_OFFLINE}"
HPT_DRY_RUN="${HPT_DRY_RUN:-0}"

[ -f "exp_scripts/$RECIPE" ] || hpt_die "RECIPE=$RECIPE: no such recipe in exp_scripts/"

# The recipe's knobs: every NAME in a ${NAME:-default} or ${NAME-default} of the recipe, less anything
# that looks like a secret or belongs to this machine.
recipe_knobs() {
  grep -ohE '\$\{[A-Z][A-Z0-9_]*:?-' "exp_scripts/$RECIPE" | sed -E 's/^\$\{//; s/:?-$//' | sort -u |
    grep -vE '^(HOME|PATH|USER|PWD)$|KEY|TOKEN|SECRET|PASSWORD' || true
}

# json_string VALUE: VALUE as a JSON string literal.
json_string() {
  local value="$1"
  value="${value//\\/\\\\}"
  value="${value//\"/\\\"}"
  value="${value//$'\t'/\\t}"
  value="${value//$'\n'/\\n}"
  printf '"%s"' "$value"
}

# runtime_env: {"env_vars": {...}} with NNODES, N_GPUS_PER_NODE and every forwarded variable set here.
runtime_env() {
  local name entries=""
  entries+="$(json_string NNODES): $(json_string "$NNODES"), "
  entries+="$(json_string N_GPUS_PER_NODE): $(json_string "$N_GPUS_PER_NODE")"
  for name in $(recipe_knobs) $FORWARD_ENV; do
    case "$name" in NNODES | N_GPUS_PER_NODE) continue ;; esac
    case " $entries " in *"\"$name\":"*) continue ;; esac  # listed twice
    if [ -n "${!name+set}" ]; then
      entries+=", $(json_string "$name"): $(json_string "${!name}")"
    fi
  done
  printf '{"env_vars": {%s}}' "$entries"
}

ENTRYPOINT=(bash "$HPT_HOME/exp_scripts/$RECIPE" "$@")
SUBMIT=(ray job submit --address "$RAY_ADDRESS" --submission-id "$SUBMISSION_ID" --runtime-env-json "$(runtime_env)")
[ "$NO_WAIT" != 1 ] || SUBMIT+=(--no-wait)
SUBMIT+=(-- "${ENTRYPOINT[@]}")

if [ "$HPT_DRY_RUN" = 1 ]; then
  printf '%q ' "${SUBMIT[@]}"
  printf '\n'
  # What the job would train: the recipe composed here, with the same NNODES / N_GPUS_PER_NODE.
  NNODES="$NNODES" N_GPUS_PER_NODE="$N_GPUS_PER_NODE" bash "exp_scripts/$RECIPE" "$@" --cfg job
  exit 0
fi
exec "${SUBMIT[@]}"
