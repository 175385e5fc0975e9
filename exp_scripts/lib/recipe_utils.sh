# shellcheck shell=bash
# Helpers shared by the training recipes in exp_scripts/. Sourced by them, never run on its own.
# Every function reads only its arguments and the environment variables named in its comment.

# hpt_die MESSAGE...: say what is wrong on stderr and stop the recipe.
hpt_die() {
  echo "hpt recipe: $*" >&2
  exit 1
}

# hpt_quote VALUE: VALUE as a single-quoted Hydra string, so that paths with spaces, commas, '=' or
# brackets reach the config unchanged (Hydra's override parser would split or reject them bare).
hpt_quote() {
  case "$1" in *"'"*) hpt_die "a single quote in '$1' cannot be passed through a Hydra override" ;; esac
  printf "'%s'" "$1"
}

# hpt_list WORD...: a Hydra list of quoted strings (['a','b']); no words give null.
hpt_list() {
  if [ "$#" -eq 0 ]; then
    printf 'null'
    return
  fi
  local out="" word
  for word in "$@"; do
    out+="${out:+,}$(hpt_quote "$word")"
  done
  printf '[%s]' "$out"
}

# hpt_print_only ARG...: true when the Hydra arguments only print something (--cfg, --help, --info)
# and nothing will train, so that missing data files or checkpoints need not stop the script.
hpt_print_only() {
  local arg
  for arg in "$@"; do
    case "$arg" in --cfg | --cfg=* | -c | --help | -h | --hydra-help | --info | --info=*) return 0 ;; esac
  done
  return 1
}

# hpt_prepare FILE NAME [OPTION...]: with PREPARE=1, write FILE with hpt's preparer
# (`python -m hpt.data.prepare NAME OPTION... --out FILE`) when it does not exist yet and this run
# reads it (FILE is one of the recipe's NEEDED_FILES).
hpt_prepare() {
  local out="$1" needed
  shift
  [ "${PREPARE:-0}" = 1 ] && [ ! -e "$out" ] || return 0
  for needed in "${NEEDED_FILES[@]}"; do
    if [ "$needed" = "$out" ]; then
      mkdir -p "$(dirname "$out")"
      echo "hpt recipe: preparing $out" >&2
      python -m hpt.data.prepare "$@" --out "$out"
      return 0
    fi
  done
}

# hpt_require_files FILE...: stop before Ray starts when a local data file is missing, pointing at
# the preparer commands in the recipe's header (remote paths such as hdfs://... are left to verl).
hpt_require_files() {
  local path
  for path in "$@"; do
    case "$path" in *://*) continue ;; esac
    [ -e "$path" ] || hpt_die "$path does not exist: make it with the prepare command in the header of $0, or run with PREPARE=1"
  done
}

# hpt_wandb_offline_without_login: when W&B is among LOGGERS but this machine has no W&B credentials
# (WANDB_API_KEY, or `wandb login`'s entry in ~/.netrc) and WANDB_MODE is unset, log W&B offline
# instead of stopping at start-up; the run is uploaded later with `wandb sync`.
hpt_wandb_offline_without_login() {
  case ",${LOGGERS}," in *,wandb,*) ;; *) return 0 ;; esac
  if [ -z "${WANDB_MODE:-}" ] && [ -z "${WANDB_API_KEY:-}" ] && ! grep -qs "api.wandb.ai" "${HOME:-/nonexistent}/.netrc"; then
    export WANDB_MODE=offline
    echo "hpt recipe: no W&B login found, so W&B logs offline under ${WANDB_DIR:-.}/wandb" \
      "(upload later: wandb sync ${WANDB_DIR:-.}/wandb/offline-run-*)" >&2
  fi
}

# hpt_train_appending_metrics CKPT_DIR ARG...: run `python -m hpt.main ARG...` with its metrics in
# $VERL_FILE_LOGGER_PATH, appended when the run resumes from a checkpoint (a tracker in CKPT_DIR, or in
# the trainer.default_local_dir among the ARGs, and no trainer.resume_mode=disable), started afresh
# otherwise. verl's file logger truncates the file it opens, which would erase a killed run's metrics
# on resume; so the trainer writes into a named pipe and `cat` appends every line to the file.
hpt_train_appending_metrics() {
  local ckpt_dir="$1" resume_mode=auto arg fifo reader status=0
  shift
  for arg in "$@"; do
    case "$arg" in
      trainer.default_local_dir=*) ckpt_dir="${arg#*=}" ;;
      trainer.resume_mode=*) resume_mode="${arg#*=}" ;;
    esac
  done
  if [ "$resume_mode" = disable ] || [ ! -s "$ckpt_dir/latest_checkpointed_iteration.txt" ]; then
    : >"$VERL_FILE_LOGGER_PATH"
  fi
  fifo="$(mktemp -u "${TMPDIR:-/tmp}/hpt_metrics.XXXXXX")"
  mkfifo "$fifo"
  exec 3<>"$fifo" # a writer held until the trainer is done, so cat sees the end only after it
  exec 4<"$fifo"  # the read end, open before anything is written (fd 3 keeps this from blocking)
  cat <&4 3>&- >>"$VERL_FILE_LOGGER_PATH" &
  reader=$!
  exec 4<&-
  VERL_FILE_LOGGER_PATH="$fifo" python -m hpt.main "$@" 3>&- || status=$?
  exec 3>&-
  wait "$reader"
  rm -f "$fifo"
  return "$status"
}
