"""Bad inputs get a clear error at start-up or a counted, logged skip; none trains silently wrong."""

import logging
import threading

import pandas as pd
import pytest
from omegaconf import OmegaConf

from hpt.data.checks import check_readable_files, check_training_rows
from hpt.rewards import registry
from hpt.rewards.startup import check_reward_options


def _rows(targets, indices=None):
    indices = list(range(len(targets))) if indices is None else indices
    return pd.DataFrame({
        "data_source": ["hpt/arithmetic"] * len(targets),
        "prompt": [[{"role": "user", "content": f"q{i}"}] for i in range(len(targets))],
        "reward_model": [{"style": "rule", "ground_truth": "1"}] * len(targets),
        "extra_info": [{"index": i, "target": t} for i, t in zip(indices, targets, strict=True)],
    })


def _config(train, strategy="switch", history=False, val=None):
    return OmegaConf.create({
        "data": {"train_files": [str(p) for p in train], "val_files": [str(p) for p in (val or [])]},
        "trainer": {"unify_strategy": strategy, "sft_warmup_steps": 0, "remove_sfted_data": history,
                    "skip_solved_prompts": False},
    })


def _parquet(tmp_path, frame, name="train.parquet"):
    path = tmp_path / name
    frame.to_parquet(path)
    return path


def check_data_files(config) -> None:
    """Both start-up data checks, in hpt.main's order."""
    check_readable_files(config)
    check_training_rows(config)


# --- demonstrations ---------------------------------------------------------------------------------

def test_non_string_demonstration_is_refused_naming_the_row(tmp_path):
    frame = _rows(["a", "b", "c"])  # a list of demonstrations per row instead of one text
    frame["extra_info"] = [{"index": i, "target": [t]} for i, t in enumerate("abc")]
    path = _parquet(tmp_path, frame)
    with pytest.raises(ValueError, match=r"must be the demonstration text \(a string\), found 3 other.*row 0: list"):
        check_data_files(_config([path]))


def test_missing_and_empty_demonstrations_are_counted_and_logged(tmp_path, caplog):
    path = _parquet(tmp_path, _rows(["a", None, "  ", "d"]))
    with caplog.at_level(logging.WARNING, logger="hpt.data.checks"):
        check_data_files(_config([path]))
    assert "2 of 4 rows have no demonstration" in caplog.text
    assert "hpt/gate/missing_demo_groups" in caplog.text


def test_a_gated_run_without_any_demonstration_is_refused(tmp_path):
    path = _parquet(tmp_path, _rows([None, ""]))
    with pytest.raises(ValueError, match="no row of data.train_files has a demonstration.*unify_strategy=no"):
        check_data_files(_config([path]))
    check_data_files(_config([path], strategy="no"))  # plain GRPO needs none


# --- duplicate extra_info.index with the prompt history -------------------------------------------------

def test_duplicate_index_is_refused_when_the_history_is_on(tmp_path):
    first = _parquet(tmp_path, _rows(["a", "b"], indices=[0, 1]), "a.parquet")
    second = _parquet(tmp_path, _rows(["c"], indices=[1]), "b.parquet")  # repeats index 1 across files
    check_data_files(_config([first, second]))  # no history: duplicates do not matter
    with pytest.raises(ValueError, match=r"must be present and unique.*repeated values, e.g. \[1\]"):
        check_data_files(_config([first, second], history=True))


# --- unreadable parquet ---------------------------------------------------------------------------------

def test_truncated_parquet_is_a_clear_error(tmp_path):
    path = _parquet(tmp_path, _rows(["a"] * 50))
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match="truncated or not parquet. Re-create it"):
        check_data_files(_config([path]))


def test_non_parquet_validation_file_is_a_clear_error(tmp_path):
    train = _parquet(tmp_path, _rows(["a"]))
    val = tmp_path / "val.parquet"
    val.write_text("not parquet")
    with pytest.raises(ValueError, match=f"cannot read {val} as parquet"):
        check_data_files(_config([train], val=[val]))


def test_startup_reports_an_unreadable_file_as_a_configuration_error(tmp_path):
    from hydra import compose, initialize_config_module

    from hpt.config import resolvers
    from hpt.main import CPU_OVERLAY, ConfigError, run

    bad = tmp_path / "train.parquet"
    bad.write_bytes(b"PAR1 half a file")
    resolvers.register()
    with initialize_config_module("hpt.config", version_base=None):
        config = compose(CPU_OVERLAY, overrides=[f"data.train_files={bad}"])
    with pytest.raises(ConfigError, match="truncated or not parquet"):
        run(config)


# --- a verifier that raises or hangs --------------------------------------------------------------------

@pytest.fixture
def flaky_source():
    release = threading.Event()

    def verifier(data_source, solution_str, ground_truth, extra_info=None, **kwargs):
        if solution_str == "raise":
            raise ZeroDivisionError("bad input")
        if solution_str == "hang":
            release.wait(5)
        return 1.0

    registry.register_verifier("test/flaky", verifier, replace=True)
    yield "test/flaky"
    release.set()


def test_a_raising_verifier_scores_zero_is_counted_and_logged(flaky_source, caplog):
    before = registry.verifier_failures()["raised"]
    with caplog.at_level(logging.WARNING, logger="hpt.rewards.registry"):
        result = registry.compute_score(flaky_source, "raise", "1")
    assert result == {"score": 0.0, "acc": 0.0, "pred": "", "reason": "error"}
    assert registry.verifier_failures()["raised"] == before + 1
    assert "ZeroDivisionError: bad input" in caplog.text
    assert registry.compute_score(flaky_source, "fine", "1")["score"] == 1.0  # the process carries on


def test_a_hanging_verifier_times_out_scores_zero_and_is_counted(flaky_source, caplog):
    before = registry.verifier_failures()["timed_out"]
    with caplog.at_level(logging.WARNING, logger="hpt.rewards.registry"):
        result = registry.compute_score(flaky_source, "hang", "1", verifier_timeout_s=0.2)
    assert result == {"score": 0.0, "acc": 0.0, "pred": "", "reason": "timeout"}
    assert registry.verifier_failures()["timed_out"] == before + 1
    assert "no result after 0.2 s" in caplog.text


def test_an_unknown_source_is_still_an_error_not_a_zero():
    with pytest.raises(ValueError, match="no verifier for data_source"):
        registry.compute_score("test/nobody", "x", "1")


def test_a_bad_verifier_timeout_is_refused_at_startup():
    with pytest.raises(ValueError, match="verifier_timeout_s must be a positive number"):
        check_reward_options({"verifier_timeout_s": 0})
    check_reward_options({"verifier_timeout_s": 10})


def test_a_verifier_value_error_about_the_row_still_stops_the_run():
    def strict(data_source, solution_str, ground_truth, extra_info=None, **kwargs):
        raise ValueError(f"ground truth {ground_truth!r} of {data_source} is unusable")

    registry.register_verifier("test/strict", strict, replace=True)
    with pytest.raises(ValueError, match="ground truth '' of test/strict is unusable"):
        registry.compute_score("test/strict", "x", "")
