"""Rollout selection at verl's seams: the selecting dataloader (refill, carry-over, state) and the
trainer's rebuild turning routed prompts into demonstration rows."""

import numpy as np
import pytest
import torch
from omegaconf import OmegaConf
from verl import DataProto

from hydra import compose, initialize_config_module

from hpt.config import resolvers
from hpt.config.schema import HPTSettings
from hpt.main import CPU_OVERLAY
from hpt.core.gates import build_gate
from hpt.core.history import HistoryConfig, PromptHistory
from hpt.core.pass_memory import MemoryConfig
from hpt.core.selection import Decision, RolloutSelector, SelectionConfig
from hpt.toy.tiny_model import build_tokenizer
from hpt.trainer import run_state
from hpt.trainer.multiturn import DemoSource
from hpt.trainer.ray_trainer import HPTRayTrainer, _waste_metrics
from hpt.trainer.selection_loader import SelectingLoader, StepSelection, generated_multiple, selection_config
from hpt.trainer.sft_stream import prompt_builder
from hpt import metrics as M

N = 4


class ListLoader:
    """A stateful loader over fixed batches of prompt keys (what verl's StatefulDataLoader yields)."""

    def __init__(self, keys: list[int], batch_size: int):
        self.batches = [keys[i : i + batch_size] for i in range(0, len(keys), batch_size)]
        self.position = 0

    def __len__(self):
        return len(self.batches)

    def __iter__(self):
        while self.position < len(self.batches):
            keys = self.batches[self.position]
            self.position += 1
            yield _batch_dict(keys)
        self.position = 0

    def state_dict(self):
        return {"position": self.position}

    def load_state_dict(self, state):
        self.position = state["position"]


def _batch_dict(keys: list[int]) -> dict:
    infos = np.empty(len(keys), dtype=object)
    infos[:] = [{"index": k, "target": f"{k}+1={k + 1}#{k + 1}"} for k in keys]
    raw = np.empty(len(keys), dtype=object)
    raw[:] = [[{"role": "user", "content": f"Q{k}+1=?"}] for k in keys]
    return {"dummy_tensor": torch.zeros(len(keys), 1, dtype=torch.uint8), "extra_info": infos, "raw_prompt": raw}


def _keys(rows) -> list[int]:
    return [info["index"] for info in rows["extra_info"]] if isinstance(rows, dict) else \
        [info["index"] for info in rows.non_tensor_batch["extra_info"]]


def _selector() -> RolloutSelector:
    selector = RolloutSelector(SelectionConfig(enable=True, explore=0.0, memory=MemoryConfig(decay=1.0)), N)
    for key in (0, 1):
        selector.observe(key, 0)  # predicted all-fail: routed
    for key in (2, 3):
        selector.observe(key, N)  # predicted all-pass: deferred
    return selector


def test_steps_keep_the_batch_size_by_drawing_more_prompts_and_carry_a_short_step_into_the_next_epoch():
    loader = SelectingLoader(ListLoader(list(range(12)), 4), _selector(), batch_size=4)
    steps = []
    for batch_dict in loader:
        steps.append((_keys(batch_dict), _keys(loader.step.routed) if loader.step.routed else [], loader.step.deferred))
    assert steps == [([4, 5], [0, 1], 2), ([6, 7, 8, 9], [], 0)]  # 10, 11 wait for the next epoch
    first_of_next_epoch = next(iter(loader))
    assert _keys(first_of_next_epoch) == [10, 11] and _keys(loader.step.routed) == [0, 1]


def test_generated_prompts_split_evenly_over_rollout_workers_by_generating_routed_ones():
    assert generated_multiple(rollout_workers=8, n=4) == 2 and generated_multiple(2, 4) == 1
    selector = _selector()
    selector.observe(4, 0)  # now 0, 1 and 4 are routed
    loader = SelectingLoader(ListLoader([0, 1, 4, 5, 6, 7], 6), selector, batch_size=4, generated_multiple=2)
    batch_dict = next(iter(loader))
    assert _keys(batch_dict) == [5, 4] and _keys(loader.step.routed) == [0, 1] and loader.step.forced == 1
    with pytest.raises(ValueError, match="num_workers"):
        SelectingLoader(ListLoader([0], 1), selector, batch_size=3, generated_multiple=2)


def test_a_restored_loader_continues_with_the_same_buffer_and_position():
    loader = SelectingLoader(ListLoader(list(range(16)), 4), _selector(), batch_size=4)
    iterator = iter(loader)
    next(iterator)  # step 1 left 6, 7 in the buffer
    state = loader.state_dict()
    rest = [_keys(b) for b in iterator]
    restored = SelectingLoader(ListLoader(list(range(16)), 4), _selector(), batch_size=4)
    restored.load_state_dict(state)
    assert [_keys(b) for b in restored] == rest == [[6, 7, 8, 9], [10, 11, 12, 13]]
    with pytest.raises(ValueError, match="without trainer.rollout_selection.*resume_without_memory=true"):
        restored.load_state_dict({"position": 1})


def test_a_checkpoint_without_selection_resumes_only_when_asked_with_an_empty_memory():
    config = _config("trainer.rollout_selection.enable=true")
    assert run_state.fingerprint(config, 10)["rollout_selection"] is True  # a plain checkpoint lacks it: refused
    config.trainer.rollout_selection.resume_without_memory = True
    assert "rollout_selection" not in run_state.fingerprint(config, 10)
    selector = RolloutSelector(SelectionConfig(enable=True, resume_without_memory=True), N)
    loader = SelectingLoader(ListLoader(list(range(8)), 4), selector, batch_size=4)
    loader.load_state_dict({"position": 1})  # verl's plain data.pt
    assert [_keys(b) for b in loader] == [[4, 5, 6, 7]] and len(selector.memory) == 0


def test_selection_keys_come_from_the_trainer_config_and_unknown_ones_are_refused():
    config = selection_config(OmegaConf.create({"rollout_selection": {"enable": True, "decay": 0.5, "seed": 3}}))
    assert config.enable and config.memory.decay == 0.5 and config.seed == 3
    with pytest.raises(ValueError, match="unknown key"):
        selection_config(OmegaConf.create({"rollout_selection": {"enabel": True}}))


def _rollout_batch(successes: list[int], prompt_width: int = 12, response_width: int = 16) -> DataProto:
    rows = len(successes) * N
    g = torch.Generator().manual_seed(0)
    prompt_mask = (torch.arange(prompt_width)[None] >= 4).long().expand(rows, -1)
    lengths = torch.tensor([3 + i % 3 for i in range(rows)])
    response_mask = (torch.arange(response_width)[None] < lengths[:, None]).long()
    scores = torch.zeros(rows, response_width)
    for p, k in enumerate(successes):
        scores[p * N : p * N + k, 0] = 1.0
    attention = torch.cat([prompt_mask, response_mask], 1)
    batch = DataProto.from_single_dict({
        "prompts": torch.randint(3, 20, (rows, prompt_width), generator=g) * prompt_mask,
        "responses": torch.randint(3, 20, (rows, response_width), generator=g), "response_mask": response_mask,
        "input_ids": torch.zeros(rows, prompt_width + response_width, dtype=torch.long), "attention_mask": attention,
        "position_ids": (attention.cumsum(1) - 1).clamp(min=0), "rm_scores": scores,
        "dummy_tensor": torch.zeros(rows, 1, dtype=torch.uint8),
    })
    keys = [10 + p for p in range(len(successes)) for _ in range(N)]
    for name, values in _batch_dict(keys).items():
        if name != "dummy_tensor":
            batch.non_tensor_batch[name] = values
    batch.non_tensor_batch["uid"] = np.array([f"q{k}" for k in keys], dtype=object)
    return batch


def _config(*overrides: str):
    resolvers.register()
    with initialize_config_module("hpt.config", version_base=None):
        return compose(CPU_OVERLAY, overrides=list(overrides))


def _trainer(selector: RolloutSelector, routed_keys: list[int], probes: dict) -> HPTRayTrainer:
    """The trainer's rebuild state without Ray or workers (what ``__init__`` sets up)."""
    trainer = HPTRayTrainer.__new__(HPTRayTrainer)
    trainer.config = _config(f"actor_rollout_ref.rollout.n={N}", "actor_rollout_ref.actor.ppo_mini_batch_size=1")
    trainer.hpt = HPTSettings.from_trainer_config(trainer.config.trainer)
    trainer._gates = {"switch": build_gate("switch")}
    trainer._sft_stream, trainer._history, trainer._warned_truncation = None, None, False
    trainer.tokenizer, trainer.processor = build_tokenizer(), None
    trainer._prompt_builder = prompt_builder(trainer.tokenizer, OmegaConf.create({}), None, "qwen3")
    trainer._demo_source = DemoSource(trainer.tokenizer, None)
    trainer._selector = selector
    trainer.train_dataloader = SelectingLoader(ListLoader([], 1), selector, batch_size=1)
    routed = DataProto.from_single_dict(_batch_dict(routed_keys))
    trainer.train_dataloader.step = StepSelection(routed=routed, probes=probes, deferred=3)
    trainer.global_steps, trainer.total_training_steps = 1, 4
    trainer._get_dp_size = lambda worker_group, role: 1
    trainer.actor_rollout_wg = None
    return trainer


def test_rebuild_trains_routed_prompts_on_their_templated_prompt_and_demonstration_and_updates_the_memory():
    selector = _selector()
    trainer = _trainer(selector, routed_keys=[0, 1], probes={11: Decision.ROUTE})
    trainer._history = PromptHistory(HistoryConfig(remove_sfted=True))
    batch = _rollout_batch([2, 1])  # prompt 10: 2/4 successes, prompt 11 (a probe predicted all-fail): 1/4
    metrics = {}
    rebuilt = trainer._rebuild(batch, metrics)

    # both groups trained by RL, one demonstration row per routed prompt, 2 pad rows to a multiple of N rows
    assert len(rebuilt) == 2 * N + 2 + 2 and metrics[M.BATCH_PAD_ROWS] == 2
    demos = rebuilt[list(range(2 * N, 2 * N + 2))]
    tokenizer = trainer.tokenizer
    for i, key in enumerate([0, 1]):
        prompt = demos.batch["prompts"][i][demos.batch["attention_mask"][i, :12].bool()]
        response = demos.batch["responses"][i][demos.batch["response_mask"][i].bool()]
        assert tokenizer.decode(prompt) == f"<bos>Q{key}+1=?:"  # templated as the agent loop would have
        assert tokenizer.decode(response) == f"{key}+1={key + 1}#{key + 1}<eos>"
    assert demos.batch["hpt_sft_weight"].tolist() == [1.0, 1.0] and demos.batch["hpt_rl_weight"].tolist() == [0, 0]
    assert demos.batch["rm_scores"].sum() == 0 and len(set(demos.non_tensor_batch["uid"])) == 2
    assert selector.memory.posterior(10) == (3.0, 3.0) and selector.memory.posterior(11) == (2.0, 4.0)
    assert metrics[M.SELECTION_ROUTED] == 2 and metrics[M.SELECTION_GENERATED] == 2
    assert metrics[M.SELECTION_PROBES] == 1 and metrics[M.SELECTION_MISPREDICTIONS] == 1
    assert metrics[M.SELECTION_DEFERRED] == 3 and metrics[M.GATE_SFT_FRAC] == pytest.approx(2 / 4)
    assert trainer.train_dataloader.step.routed is None  # consumed
    assert trainer._history.sfted == {0, 1}  # routed prompts count as trained on their demonstration


def test_no_gradient_share_counts_dropped_and_zero_advantage_rollout_tokens():
    selector = _selector()
    trainer = _trainer(selector, routed_keys=[], probes={})
    trainer.train_dataloader.step = StepSelection()
    batch = _rollout_batch([0, 4, 2])  # all-fail -> SFT (rollouts dropped), all-pass -> zero advantage, mixed
    metrics = {}
    trainer._rebuild(batch, metrics)
    tokens = batch.batch["response_mask"].sum(-1)
    assert metrics[M.ROLLOUT_TOKENS] == float(tokens.sum())
    assert metrics[M.ROLLOUT_NO_GRAD_SHARE] == pytest.approx(float(tokens[: 2 * N].sum() / tokens.sum()))
    assert _waste_metrics(batch[list(range(2 * N, 3 * N))], torch.tensor([1.0, 1, 0, 0]), [], _EmptyPlan())[
        M.ROLLOUT_NO_GRAD_SHARE] == 1.0  # no group kept: nothing trains


class _EmptyPlan:
    keep_rows, keep_weights = (), ()


def test_start_up_refuses_routing_with_a_gate_that_keeps_all_fail_rollouts_and_unknown_keys():
    from hpt.main import ConfigError, _check_hpt_keys

    with pytest.raises(ConfigError, match="gate 'luffy' trains an all-fail group with its rollouts.*route_fail=false"):
        _check_hpt_keys(_config("trainer.rollout_selection.enable=true", "trainer.unify_strategy=luffy"))
    with pytest.raises(ConfigError, match="unknown key"):
        _check_hpt_keys(_config("+trainer.rollout_selection.treshold=0.5"))


def test_selection_refuses_training_files_without_a_unique_index(tmp_path):
    import pandas as pd

    from hpt.data.checks import check_training_rows

    path = tmp_path / "train.parquet"
    pd.DataFrame({"extra_info": [{"index": 0, "target": "a"}, {"index": 0, "target": "b"}]}).to_parquet(path)
    config = OmegaConf.create({"data": {"train_files": [str(path)]},
                               "trainer": {"unify_strategy": "switch", "rollout_selection": {"enable": False}}})
    check_training_rows(config)  # off: duplicates do not matter
    config.trainer.rollout_selection.enable = True
    with pytest.raises(ValueError, match=r"trainer.rollout_selection identify prompts.*repeated values, e.g. \[0\]"):
        check_training_rows(config)
