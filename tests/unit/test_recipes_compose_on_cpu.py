"""Every training recipe in exp_scripts/ composes with the current config, and says what it claims.

The recipes end in ``exec python -m hpt.main <overrides> "$@"`` (multi-node: ``ray job submit``).
Here a stand-in ``python`` (and ``ray``) first on PATH records the arguments and the environment
instead of training; the test composes exactly those arguments with Hydra's compose API, the way
``python -m hpt.main`` would, then runs hpt's and verl's start-up checks on the result. A renamed
or misspelt key, a bad gate or loss name, or a batch size that does not divide over the GPUs fails.
One test runs a recipe through the real entry point with ``--cfg job`` (Hydra prints the composed
config and exits before hpt's start-up checks) and checks it prints the same config.
No GPU, no network, nothing trains.
"""

import os
import shlex
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml
from hydra import compose, initialize_config_module
from omegaconf import DictConfig, ListConfig, OmegaConf

import hpt.main as hpt_main
from hpt.config import resolvers

ROOT = Path(__file__).resolve().parents[2]
SEED003 = "qwen3_1.7b_deepmath.sh"
PAPER = "qwen2.5_math_7b_openr1.sh"

# Default data file names of the recipes, under DATA_DIR.
QWEN3_FILES = ["deepmath_qwen3", "metamathqa_sft_qwen3", "metamathqa_paired_qwen3", "gsm8k_test_qwen3",
               "math500_qwen3", "aime2024_qwen3"]
BOXED_FILES = ["openr1_boxed", "math500_boxed", "aime2024_boxed"]

PYTHON_SHIM = r"""#!/usr/bin/env bash
# Records `python -m hpt.*` calls (arguments and environment) instead of running them.
case "${1:-} ${2:-}" in
  "-m hpt.main" | "-m hpt.data.prepare")
    n=$(find "$HPT_TEST_CALLS" -name '*.argv' | wc -l)
    call="$HPT_TEST_CALLS/$(printf %03d "$n")"
    printf '%s\0' python "$@" > "$call.argv"
    env -0 > "$call.env"
    if [ "$2" = hpt.data.prepare ]; then  # make the file the preparer was asked for
      while [ "$#" -gt 0 ]; do
        if [ "$1" = --out ]; then mkdir -p "$(dirname "$2")" && touch "$2"; fi
        shift
      done
    fi
    exit 0 ;;
esac
exec "$HPT_TEST_REAL_PYTHON" "$@"
"""

RAY_SHIM = r"""#!/usr/bin/env bash
# Records `ray ...` calls instead of contacting a cluster.
n=$(find "$HPT_TEST_CALLS" -name '*.argv' | wc -l)
printf '%s\0' ray "$@" > "$HPT_TEST_CALLS/$(printf %03d "$n").argv"
"""


# ---------------------------------------------------------------- running the scripts


@pytest.fixture(scope="module")
def shim_bin(tmp_path_factory) -> Path:
    bin_dir = tmp_path_factory.mktemp("bin")
    for name, text in (("python", PYTHON_SHIM), ("ray", RAY_SHIM)):
        path = bin_dir / name
        path.write_text(text)
        path.chmod(0o755)
    return bin_dir


def _write_rows(path: Path) -> None:
    """One row of verl's parquet schema with a demonstration, enough for the start-up file checks."""
    pd.DataFrame([{
        "data_source": "openai/gsm8k",
        "prompt": [{"role": "user", "content": "What is 1+1?"}],
        "ability": "math",
        "reward_model": {"style": "rule", "ground_truth": "2"},
        "extra_info": {"index": 0, "split": "train", "target": "1+1=2. The answer is \\boxed{2}."},
    }]).to_parquet(path)


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("data")
    for stem in QWEN3_FILES + BOXED_FILES:
        _write_rows(out / f"{stem}.parquet")
    return out


class Run:
    """One script run under the stand-ins: its exit status, output and the calls it made."""

    def __init__(self, proc: subprocess.CompletedProcess, calls_dir: Path):
        self.returncode, self.stdout, self.stderr = proc.returncode, proc.stdout, proc.stderr
        self.calls = []  # (argv, env) in call order; env is None for `ray`
        for argv_file in sorted(calls_dir.glob("*.argv")):
            argv = argv_file.read_bytes().decode().split("\0")[:-1]
            env_file = argv_file.with_suffix(".env")
            env = None
            if env_file.exists():
                pairs = env_file.read_bytes().decode().split("\0")[:-1]
                env = dict(pair.split("=", 1) for pair in pairs)
            self.calls.append((argv, env))

    def hpt_main_calls(self) -> list[tuple[list[str], dict]]:
        return [(argv, env) for argv, env in self.calls if argv[:3] == ["python", "-m", "hpt.main"]]

    def only_hpt_main(self) -> tuple[list[str], dict]:
        assert self.returncode == 0, self.stderr
        calls = self.hpt_main_calls()
        assert len(calls) == 1, [argv[:3] for argv, _ in self.calls]
        return calls[0]


@pytest.fixture
def run_script(shim_bin, data_dir, tmp_path):
    """Run exp_scripts/<script> with the stand-ins first on PATH and a clean, offline environment."""
    counter = iter(range(1000))

    def run(script: str, *args: str, **env: str) -> Run:
        calls_dir = tmp_path / f"calls{next(counter)}"
        calls_dir.mkdir()
        home = tmp_path / "home"  # no ~/.netrc: no W&B login
        home.mkdir(exist_ok=True)
        base = {
            "PATH": f"{shim_bin}{os.pathsep}{os.environ['PATH']}",
            "HOME": str(home),
            "DATA_DIR": str(data_dir),
            "CKPT_ROOT": str(tmp_path / "checkpoints"),
            "LOG_ROOT": str(tmp_path / "runs"),
            "HPT_TEST_CALLS": str(calls_dir),
            "HPT_TEST_REAL_PYTHON": sys.executable,
        }
        proc = subprocess.run(["bash", str(ROOT / "exp_scripts" / script), *args], env={**base, **env},
                              capture_output=True, text=True, timeout=120, cwd=tmp_path)
        return Run(proc, calls_dir)

    return run


# ---------------------------------------------------------------- composing what they ran


def compose_argv(argv: list[str]) -> DictConfig:
    """The config `python -m hpt.main ARGS` composes: Hydra's own flags apart, ARGS are overrides."""
    assert argv[:3] == ["python", "-m", "hpt.main"], argv
    config_name, overrides, args = "hpt_trainer", [], iter(argv[3:])
    for arg in args:
        if arg in ("--config-name", "-cn"):
            config_name = next(args)
        elif arg in ("--cfg", "-c"):
            next(args)
        elif arg != "--resolve":
            overrides.append(arg)
    resolvers.register()
    with initialize_config_module("hpt.config", version_base=None):
        return compose(config_name, overrides=overrides)


def assert_starts(cfg: DictConfig) -> None:
    """hpt's start-up checks (gate, loss and schedule names, coefficients, SFT-stream files) and verl's
    config validation (batch sizes over the GPUs, micro-batch settings) pass."""
    from verl.trainer.ppo.utils import need_critic, need_reference_policy
    from verl.utils.config import validate_config

    cfg = cfg.copy()
    OmegaConf.resolve(cfg)
    hpt_main._check_hpt_keys(cfg)
    validate_config(cfg, use_reference_policy=need_reference_policy(cfg), use_critic=need_critic(cfg))


def assert_values(cfg: DictConfig, expected: dict) -> None:
    for key, value in expected.items():
        actual = OmegaConf.select(cfg, key, throw_on_missing=True)
        if isinstance(actual, DictConfig | ListConfig):
            actual = OmegaConf.to_container(actual, resolve=True)
        assert actual == value, f"{key}: {actual!r} != {value!r}"


def files(data_dir: Path, *stems: str) -> list[str]:
    return [str(data_dir / f"{stem}.parquet") for stem in stems]


# ---------------------------------------------------------------- the seed-003 set-up

SEED003_METHODS = {
    "hpt": {"trainer.unify_strategy": "switch", "trainer.switch_gate": 0, "actor_rollout_ref.rollout.n": 5,
            "trainer.lambda_schedule.name": "constant", "data.sft_stream.train_files": ["metamathqa_sft_qwen3"],
            "data.train_files": ["deepmath_qwen3"]},
    "grpo": {"trainer.unify_strategy": "no", "actor_rollout_ref.rollout.n": 5, "data.sft_stream.train_files": None,
             "data.train_files": ["deepmath_qwen3"]},
    "sft": {"trainer.unify_strategy": "sft", "actor_rollout_ref.rollout.n": 1, "data.sft_stream.train_files": None,
            "data.train_files": ["metamathqa_paired_qwen3"]},
    "luffy": {"trainer.unify_strategy": "luffy", "actor_rollout_ref.rollout.n": 5,
              "actor_rollout_ref.actor.off_policy_reshape": "p_div_p_0.1", "data.sft_stream.train_files": None,
              "data.train_files": ["deepmath_qwen3"]},
}


def _with_paths(expected: dict, data_dir: Path) -> dict:
    out = dict(expected)
    for key in ("data.train_files", "data.val_files", "data.sft_stream.train_files"):
        if out.get(key) is not None:
            out[key] = files(data_dir, *out[key])
    return out


@pytest.mark.parametrize("method", sorted(SEED003_METHODS))
def test_seed003_recipe_composes_qwen3_nonthinking_deepmath_on_4_gpus(method, run_script, data_dir):
    argv, env = run_script(SEED003, METHOD=method).only_hpt_main()
    cfg = compose_argv(argv)
    assert_values(cfg, _with_paths({
        "actor_rollout_ref.model.path": "Qwen/Qwen3-1.7B",
        "trainer.total_epochs": 15,
        "trainer.n_gpus_per_node": 4,
        "trainer.nnodes": 1,
        "trainer.logger": ["console", "wandb"],
        "data.val_files": ["gsm8k_test_qwen3", "math500_qwen3", "aime2024_qwen3"],
        "data.apply_chat_template_kwargs.enable_thinking": False,
        "actor_rollout_ref.rollout.name": "vllm",
        "actor_rollout_ref.rollout.val_kwargs.n": 1,
        "actor_rollout_ref.actor.strategy": "fsdp2",
        "actor_rollout_ref.actor.use_dynamic_bsz": True,
        "actor_rollout_ref.model.enable_gradient_checkpointing": True,
        "actor_rollout_ref.actor.loss_normalization": "global",  # seed 003: SFT:RL exactly the coefficient
        "trainer.experiment_name": f"qwen3-1.7b-deepmath-{method}",
        **SEED003_METHODS[method],
    }, data_dir))
    assert_starts(cfg)
    assert env["WANDB_MODE"] == "offline"  # no W&B login in the test's HOME: offline, not a failed start


def test_recipe_knobs_and_trailing_overrides_reach_the_config(run_script, data_dir):
    argv, _ = run_script(
        SEED003, "trainer.total_epochs=2", "trainer.test_freq=7",
        MODEL_PATH="/models/my qwen", ROLLOUT_N="3", N_GPUS_PER_NODE="2", LOGGERS="console,tensorboard",
        PARAM_OFFLOAD="true", OPTIMIZER_OFFLOAD="true", GPU_MEMORY_UTILIZATION="0.4", SAVE_HF_MODEL="1",
        PPO_MAX_TOKEN_LEN_PER_GPU="8192", TRAIN_MAX_SAMPLES="256", SFT_STREAM_FILES="",
    ).only_hpt_main()
    cfg = compose_argv(argv)
    assert_values(cfg, {
        "actor_rollout_ref.model.path": "/models/my qwen",  # a path with a space survives Hydra's parser
        "actor_rollout_ref.rollout.n": 3,
        "trainer.n_gpus_per_node": 2,
        "trainer.logger": ["console", "tensorboard"],
        "trainer.total_epochs": 2,
        "trainer.test_freq": 7,
        "actor_rollout_ref.actor.fsdp_config.param_offload": True,
        "actor_rollout_ref.actor.fsdp_config.optimizer_offload": True,
        "actor_rollout_ref.rollout.gpu_memory_utilization": 0.4,
        "actor_rollout_ref.actor.ppo_max_token_len_per_gpu": 8192,
        "actor_rollout_ref.actor.checkpoint.save_contents": ["model", "optimizer", "extra", "hf_model"],
        "data.train_max_samples": 256,
        "data.sft_stream.train_files": None,
    })
    assert_starts(cfg)


@pytest.mark.parametrize("recipe", [SEED003, PAPER])
@pytest.mark.parametrize("mode", [None, "lenient", "strict"])
def test_reward_mode_is_each_sources_default_unless_reward_mode_names_one(recipe, mode, run_script, data_dir):
    env = {} if mode is None else {"REWARD_MODE": mode}
    argv, _ = run_script(recipe, **env).only_hpt_main()
    cfg = compose_argv(argv)
    assert (cfg.reward.custom_reward_function.get("reward_kwargs") or {}).get("mode") == mode
    assert_starts(cfg)


def test_unknown_method_and_missing_data_stop_with_a_hint(run_script, tmp_path):
    bad = run_script(SEED003, METHOD="dpo")
    assert bad.returncode != 0 and "hpt, grpo, sft, luffy" in bad.stderr and not bad.hpt_main_calls()
    missing = run_script(SEED003, DATA_DIR=str(tmp_path / "empty"))
    assert missing.returncode != 0 and "PREPARE=1" in missing.stderr and not missing.hpt_main_calls()
    printed = run_script(SEED003, "--cfg", "job", DATA_DIR=str(tmp_path / "empty"))  # print-only: no data needed
    assert printed.returncode == 0 and printed.hpt_main_calls()


def test_prepare_runs_the_preparers_for_the_files_this_method_reads(run_script, tmp_path):
    empty = tmp_path / "fresh"
    run = run_script(SEED003, PREPARE="1", METHOD="grpo", DATA_DIR=str(empty))
    assert run.returncode == 0, run.stderr
    prepared = [argv for argv, _ in run.calls if argv[:3] == ["python", "-m", "hpt.data.prepare"]]
    names = [argv[3] for argv in prepared]
    assert names == ["deepmath", "gsm8k", "math500", "aime2024"]  # GRPO reads no MetaMathQA
    for argv in prepared:
        assert argv[argv.index("--template") + 1] == "qwen3_nonthinking"
        assert Path(argv[argv.index("--out") + 1]).parent == empty
    assert len(run.hpt_main_calls()) == 1


def _header_prepare_commands(script: str, data_dir: Path) -> list[list[str]]:
    """The `python -m hpt.data.prepare ...` lines a recipe's header tells users to run."""
    lines = [line.split("#", 1)[1].strip() for line in (ROOT / "exp_scripts" / script).read_text().splitlines()
             if line.startswith("#") and "python -m hpt.data.prepare " in line]
    return [shlex.split(line.replace("$DATA_DIR", str(data_dir))) for line in lines]


@pytest.mark.parametrize(("script", "methods"), [(SEED003, ("hpt", "sft")), (PAPER, ("hpt",))])
def test_header_prepare_commands_are_what_prepare_1_runs_and_the_preparer_accepts(
        script, methods, run_script, tmp_path):
    from hpt.data.prepare.__main__ import build_parser

    header = _header_prepare_commands(script, tmp_path / "fresh")
    assert header
    ran = []
    for method in methods:  # together these methods read every file the recipe knows
        run = run_script(script, PREPARE="1", METHOD=method, DATA_DIR=str(tmp_path / "fresh"))
        assert run.returncode == 0, run.stderr
        ran += [argv for argv, _ in run.calls if argv[:3] == ["python", "-m", "hpt.data.prepare"]]
    assert sorted(map(tuple, ran)) == sorted(map(tuple, header))
    parser = build_parser()
    for argv in header:
        parser.parse_args(argv[3:])  # every flag exists and every value is a valid choice


# ---------------------------------------------------------------- the HPT paper set-up

ORIGINAL = {"actor_rollout_ref.actor.loss_normalization": "original"}  # the papers' loss balance
PAPER_METHODS = {
    "hpt": {"trainer.unify_strategy": "switch", "trainer.switch_gate": 0, "actor_rollout_ref.rollout.n": 8,
            "actor_rollout_ref.actor.optim.lr": 5e-6, **ORIGINAL},
    "grpo": {"trainer.unify_strategy": "no", "actor_rollout_ref.rollout.n": 8,
             "actor_rollout_ref.actor.optim.lr": 1e-6, **ORIGINAL},
    "sft": {"trainer.unify_strategy": "sft", "actor_rollout_ref.rollout.n": 1,
            "actor_rollout_ref.actor.optim.lr": 5e-6, "actor_rollout_ref.actor.loss_normalization": "global"},
    "luffy": {"trainer.unify_strategy": "luffy", "actor_rollout_ref.rollout.n": 7,
              "actor_rollout_ref.actor.off_policy_loss_type": "shaped", "actor_rollout_ref.actor.optim.lr": 1e-6,
              **ORIGINAL},
    "srft": {"trainer.unify_strategy": "srft", "actor_rollout_ref.rollout.n": 7,
             "actor_rollout_ref.actor.calculate_entropy": True, "actor_rollout_ref.actor.optim.lr": 1e-6,
             **ORIGINAL},
}


@pytest.mark.parametrize("method", sorted(PAPER_METHODS))
def test_paper_recipe_composes_qwen25_math_7b_openr1_on_8_gpus(method, run_script, data_dir):
    argv, _ = run_script(PAPER, METHOD=method).only_hpt_main()
    cfg = compose_argv(argv)
    assert_values(cfg, _with_paths({
        "actor_rollout_ref.model.path": "Qwen/Qwen2.5-Math-7B",
        "data.train_files": ["openr1_boxed"],
        "data.val_files": ["math500_boxed", "aime2024_boxed"],
        "data.max_response_length": 8192,
        "trainer.n_gpus_per_node": 8,
        "trainer.total_training_steps": 500,
        "trainer.logger": ["console", "wandb"],
        "actor_rollout_ref.actor.policy_loss.loss_mode": "unclipped",
        "actor_rollout_ref.actor.loss_agg_mode": "seq-mean-token-sum-norm",
        "actor_rollout_ref.actor.loss_scale_factor": 8192,
        "algorithm.norm_adv_by_std_in_grpo": False,
        "actor_rollout_ref.rollout.val_kwargs.n": 8,
        "actor_rollout_ref.rollout.val_kwargs.temperature": 0.6,
        "data.apply_chat_template_kwargs": {},
        **PAPER_METHODS[method],
    }, data_dir))
    assert_starts(cfg)


# ---------------------------------------------------------------- SFT then GRPO


def _fake_stage1_checkpoint(stage1_dir: Path, step: int) -> Path:
    hf_dir = stage1_dir / f"global_step_{step}" / "actor" / "huggingface"
    hf_dir.mkdir(parents=True)
    (hf_dir / "config.json").write_text("{}")
    (stage1_dir / "latest_checkpointed_iteration.txt").write_text(str(step))
    return hf_dir


def test_sft_then_grpo_starts_stage2_from_stage1_hugging_face_weights(run_script, data_dir, tmp_path):
    stage1_dir = tmp_path / "checkpoints" / "sft_then_grpo" / "qwen3_1.7b_deepmath-sft-stage1"
    hf_dir = _fake_stage1_checkpoint(stage1_dir, 123)  # what stage 1 leaves behind on a GPU machine
    run = run_script("sft_then_grpo.sh", "trainer.test_freq=9", STAGE2_ARGS="trainer.total_epochs=3")
    assert run.returncode == 0, run.stderr
    (argv1, _), (argv2, _) = run.hpt_main_calls()
    stage1, stage2 = compose_argv(argv1), compose_argv(argv2)
    assert_values(stage1, {
        "trainer.unify_strategy": "sft",
        "data.train_files": files(data_dir, "metamathqa_paired_qwen3"),
        "actor_rollout_ref.actor.checkpoint.save_contents": ["model", "optimizer", "extra", "hf_model"],
        "trainer.default_local_dir": str(stage1_dir),
        "trainer.test_freq": 9,
        "trainer.total_epochs": 15,
    })
    assert_values(stage2, {
        "trainer.unify_strategy": "no",
        "actor_rollout_ref.model.path": str(hf_dir),
        "data.train_files": files(data_dir, "deepmath_qwen3"),
        "actor_rollout_ref.rollout.n": 5,
        "trainer.test_freq": 9,
        "trainer.total_epochs": 3,
    })
    assert stage2.trainer.default_local_dir != stage1.trainer.default_local_dir  # stage 2 does not resume stage 1
    for cfg in (stage1, stage2):
        assert_starts(cfg)


def test_sft_then_grpo_without_stage1_checkpoint_stops_unless_only_printing(run_script):
    stopped = run_script("sft_then_grpo.sh", STAGE="2")
    assert stopped.returncode != 0 and "stage 1 left no checkpoint" in stopped.stderr
    printed = run_script("sft_then_grpo.sh", "--cfg", "job", RECIPE=PAPER)
    assert printed.returncode == 0, printed.stderr
    (argv1, _), (argv2, _) = printed.hpt_main_calls()
    assert compose_argv(argv1).trainer.unify_strategy == "sft"
    assert "global_step_LAST/actor/huggingface" in compose_argv(argv2).actor_rollout_ref.model.path


# ---------------------------------------------------------------- multi-node submission


def _entrypoint_env(ray_argv: list[str]) -> tuple[dict, list[str]]:
    import json

    runtime_env = json.loads(ray_argv[ray_argv.index("--runtime-env-json") + 1])
    return runtime_env["env_vars"], ray_argv[ray_argv.index("--") + 1:]


def test_multinode_submits_the_recipe_with_its_environment(run_script, data_dir, shim_bin, tmp_path):
    run = run_script("multinode_submit.sh", "trainer.test_freq=5", NNODES="2", METHOD="luffy",
                     WANDB_API_KEY="not-to-be-forwarded", RAY_ADDRESS="http://head:8265")
    assert run.returncode == 0, run.stderr
    (ray_argv, _), = run.calls
    assert ray_argv[:3] == ["ray", "job", "submit"]
    assert ray_argv[ray_argv.index("--address") + 1] == "http://head:8265"
    env_vars, entrypoint = _entrypoint_env(ray_argv)
    assert env_vars["NNODES"] == "2" and env_vars["N_GPUS_PER_NODE"] == "8" and env_vars["METHOD"] == "luffy"
    assert env_vars["DATA_DIR"] == str(data_dir)
    assert "WANDB_API_KEY" not in env_vars and "HOME" not in env_vars and "PATH" not in env_vars
    assert entrypoint == ["bash", str(ROOT / "exp_scripts" / PAPER), "trainer.test_freq=5"]

    # What the head node runs: the entrypoint with the job's environment variables.
    calls_dir = tmp_path / "head_calls"
    calls_dir.mkdir()
    env = {"PATH": f"{shim_bin}{os.pathsep}{os.environ['PATH']}", "HOME": str(tmp_path),
           "HPT_TEST_CALLS": str(calls_dir), "HPT_TEST_REAL_PYTHON": sys.executable, **env_vars}
    head = Run(subprocess.run(entrypoint, env=env, capture_output=True, text=True, timeout=120), calls_dir)
    argv, _ = head.only_hpt_main()
    cfg = compose_argv(argv)
    assert_values(cfg, {"trainer.nnodes": 2, "trainer.n_gpus_per_node": 8, "trainer.unify_strategy": "luffy",
                        "trainer.test_freq": 5, "data.train_files": files(data_dir, "openr1_boxed")})
    assert_starts(cfg)


def test_multinode_dry_run_prints_the_submit_command_and_the_composed_config(run_script):
    run = run_script("multinode_submit.sh", HPT_DRY_RUN="1", RECIPE=SEED003, NNODES="3", N_GPUS_PER_NODE="4")
    assert run.returncode == 0, run.stderr
    assert run.stdout.startswith("ray job submit ")
    assert all(argv[0] != "ray" for argv, _ in run.calls)  # nothing submitted
    argv, _ = run.only_hpt_main()
    assert argv[-2:] == ["--cfg", "job"]
    assert_values(compose_argv(argv), {"trainer.nnodes": 3, "trainer.n_gpus_per_node": 4})


# ---------------------------------------------------------------- the real entry point, and logging


def test_real_entry_point_prints_the_same_config_with_cfg_job(run_script, data_dir, tmp_path):
    argv, _ = run_script(SEED003).only_hpt_main()
    expected = OmegaConf.to_container(compose_argv(argv), resolve=False)
    env = {"PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}", "HOME": str(tmp_path),
           "DATA_DIR": str(data_dir), "CKPT_ROOT": str(tmp_path / "checkpoints"), "LOG_ROOT": str(tmp_path / "runs"),
           "VERL_PLATFORM": "cpu"}
    proc = subprocess.run(["bash", str(ROOT / "exp_scripts" / SEED003), "--cfg", "job"], env=env,
                          capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert yaml.safe_load(proc.stdout) == expected


def test_recipe_loggers_write_wandb_offline_and_tensorboard_without_network(run_script, monkeypatch):
    argv, env = run_script(SEED003, LOGGERS="console,wandb,tensorboard").only_hpt_main()
    cfg = compose_argv(argv)
    for name in ("WANDB_MODE", "WANDB_DIR", "TENSORBOARD_DIR"):  # as the recipe exported them
        monkeypatch.setenv(name, env[name])
    monkeypatch.setenv("WANDB_SILENT", "true")
    from verl.utils.tracking import Tracking

    from hpt import metrics

    tracker = Tracking(project_name=cfg.trainer.project_name, experiment_name=cfg.trainer.experiment_name,
                       default_backend=list(cfg.trainer.logger), config={"trainer": {}})
    for step in (1, 2):
        tracker.log({metrics.GATE_SFT_FRAC: 0.5 / step, metrics.GATE_PASS_RATE: 0.2 * step,
                     "val-core/openai/gsm8k/acc/mean@1": 0.6}, step=step)
    tracker.finish()
    assert list(Path(env["WANDB_DIR"]).glob("wandb/offline-run-*/run-*.wandb"))
    assert list(Path(env["TENSORBOARD_DIR"]).glob("events.out.tfevents.*"))


@pytest.mark.parametrize("script", [SEED003, PAPER])
def test_recipes_save_a_hugging_face_model_by_default_for_hpt_eval(run_script, data_dir, script):
    argv, _ = run_script(script).only_hpt_main()
    contents = compose_argv(argv).actor_rollout_ref.actor.checkpoint.save_contents
    assert "hf_model" in contents  # the last step's checkpoint is what the README evaluates
