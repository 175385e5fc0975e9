"""`hpt report`: a metrics log written by verl's own FileLogger → PNG curves and a summary with hand-known numbers.

verl's ``verl/utils/tracking.py`` is loaded on its own from the installed package (its imports are
stdlib + orjson), so the fixture is written by the real ``FileLogger`` without importing all of verl.
"""

import importlib.util
import struct
from pathlib import Path

import numpy as np
import pytest

from hpt import metrics as M
from hpt.cli import main as hpt_main
from hpt.report import write_report
from hpt.report.metrics_log import read_metrics_log

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
ARITH_VAL = "val-core/hpt/arithmetic/acc/mean@1"
OTHER_VAL = "val-core/openai/gsm8k/acc/mean@4"

# Four training steps; step 0 is the validation before training, step 4 also validates.
SFT_FRAC = [0.5, 0.25, 0.25, 0.0]
LOSS_SFT = [2.0, 1.5, 1.0, 0.5]
LOSS_RL = {1: 0.1, 3: 0.3, 4: 0.2}  # not logged at step 2
REWARD = [0.25, 0.5, 0.5, 0.75]
SCORE = [0.5, 0.5, 0.75, 1.0]
STEP_TIME = [2.0, 1.0, 1.0, 2.0]


def _verl_file_logger_class():
    verl_dir = Path(importlib.util.find_spec("verl").origin).parent
    spec = importlib.util.spec_from_file_location("verl_tracking_alone", verl_dir / "utils" / "tracking.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.FileLogger


def _write_log(path: Path, records: list[tuple[int, dict]], monkeypatch) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    monkeypatch.setenv("VERL_FILE_LOGGER_PATH", str(path))
    file_logger = _verl_file_logger_class()("hpt", "test")
    for step, data in records:
        file_logger.log(data=data, step=step)
    file_logger.finish()
    return path


def _hpt_run_records() -> list[tuple[int, dict]]:
    records = [(0, {ARITH_VAL: 0.25, OTHER_VAL: 0.5, "val-aux/hpt/arithmetic/score/mean@1": 0.25})]
    for i, step in enumerate(range(1, 5)):
        data = {
            M.GATE_SFT_FRAC: SFT_FRAC[i], M.GATE_RL_FRAC: 1.0 - SFT_FRAC[i], M.GATE_OFF_FRAC: 0.0, M.GATE_MIX_FRAC: 0.0,
            M.LOSS_SFT: LOSS_SFT[i], M.LOSS_OFF: np.float32("nan"),  # NaN every step: written as null
            M.REWARD_MEAN: np.float32(REWARD[i]), "critic/score/mean": SCORE[i], "timing_s/step": STEP_TIME[i],
            "training/global_step": step,
        }
        if step in LOSS_RL:
            data[M.LOSS_RL] = LOSS_RL[step]
        if step == 4:
            data |= {ARITH_VAL: 0.75, OTHER_VAL: 1.0}
        records.append((step, data))
    return records


def _table(summary: str) -> dict[str, list[str]]:
    """The key-metrics table: metric → [logged at steps, first, last, mean]."""
    rows = [line.strip("|").split("|") for line in summary.splitlines() if line.startswith("| `")]
    return {cells[0].strip().strip("`"): [cell.strip() for cell in cells[1:]] for cells in rows}


def _assert_png(path: Path) -> None:
    data = path.read_bytes()
    assert data[:8] == PNG_MAGIC, f"{path} is not a PNG"
    width, height = struct.unpack(">II", data[16:24])  # IHDR
    assert width >= 400 and height >= 200 and len(data) > 5_000, f"{path}: {width}x{height}, {len(data)} bytes"


@pytest.fixture(scope="module")
def hpt_run(tmp_path_factory):
    with pytest.MonkeyPatch.context() as monkeypatch:
        run = tmp_path_factory.mktemp("run")
        log = _write_log(run / "metrics.jsonl", _hpt_run_records(), monkeypatch)
    with log.open("ab") as f:
        f.write(b'{"step": 5, "data": {"hpt/gate/sft_')  # the line a crash cut
    (summary,) = write_report(run)
    return run, summary


def test_log_is_in_verls_file_logger_format(hpt_run):
    run, _ = hpt_run
    first = (run / "metrics.jsonl").read_text().splitlines()[0]
    assert first.startswith('{"step":0,"data":{')
    log = read_metrics_log(run / "metrics.jsonl")
    assert list(log.steps) == [0, 1, 2, 3, 4] and log.malformed_lines == 1
    assert M.LOSS_OFF not in log.keys()  # null every step


def test_report_draws_every_figure_as_a_png(hpt_run):
    run, summary = hpt_run
    assert summary == run / "report" / "summary.md"
    for name in ("modes", "losses", "reward", "validation"):
        _assert_png(run / "report" / f"{name}.png")
    assert not [p.name for p in (run / "report").iterdir() if p.name.startswith(".")], "temp file left behind"


def test_summary_has_hand_known_first_last_mean(hpt_run):
    _, summary = hpt_run
    text = summary.read_text()
    assert "- training steps: 4 (1–4)" in text
    assert "- validations: 2 (steps 0, 4)" in text
    assert "- mean step time: 1.5 s over 4 steps (total 6 s" in text
    assert "- malformed lines skipped: 1" in text
    table = _table(text)
    assert table[M.GATE_SFT_FRAC] == ["4 (1–4)", "0.5", "0", "0.25"]
    assert table[M.GATE_RL_FRAC] == ["4 (1–4)", "0.5", "1", "0.75"]
    assert table[M.GATE_MIX_FRAC] == ["4 (1–4)", "0", "0", "0"]
    assert table[M.LOSS_SFT] == ["4 (1–4)", "2", "0.5", "1.25"]
    assert table[M.LOSS_RL] == ["3 (1–4)", "0.1", "0.2", "0.2"]  # missing at step 2: not a zero
    assert table[M.REWARD_MEAN] == ["4 (1–4)", "0.25", "0.75", "0.5"]
    assert table["critic/score/mean"] == ["4 (1–4)", "0.5", "1", "0.6875"]
    assert table[ARITH_VAL] == ["2 (0–4)", "0.25", "0.75", "0.5"]
    assert table[OTHER_VAL] == ["2 (0–4)", "0.5", "1", "0.75"]
    assert M.LOSS_OFF not in table and "val-aux/hpt/arithmetic/score/mean@1" not in table
    for name in ("modes", "losses", "reward", "validation"):
        assert f"]({name}.png)" in text
    assert "Not in this log" not in text


def test_absent_metrics_are_reported_missing_and_stale_figures_removed(tmp_path, monkeypatch):
    """A plain verl GRPO log without validation: only the reward curve; the rest is named as missing."""
    log = _write_log(tmp_path / "grpo.jsonl", [(s, {"critic/score/mean": 0.1 * s, "timing_s/step": 1.0})
                                                for s in (1, 2)], monkeypatch)
    out = tmp_path / "out"
    out.mkdir()
    (out / "modes.png").write_bytes(b"from an earlier report")
    (summary,) = write_report(log, out)
    text = summary.read_text()
    assert sorted(p.name for p in out.iterdir()) == ["reward.png", "summary.md"]
    missing = text.split("## Not in this log")[1]
    assert "- modes: no `hpt/gate/*_frac` metric" in missing
    assert "- losses: no `hpt/loss/*` metric" in missing
    assert "- validation: " in missing and "trainer.test_freq" in missing
    assert "tool_use" not in missing  # a figure only tool-agent runs have is not reported missing
    assert list(_table(text)) == ["critic/score/mean"]
    assert "- validations: 0" in text


def test_tool_agent_runs_get_the_tool_use_curve(tmp_path, monkeypatch):
    """Success rate and tool-call share together; runs without tool metrics neither draw nor mention it."""
    log = _write_log(tmp_path / "agent.jsonl", [(s, {M.GATE_PASS_RATE: 0.1 * s, M.AGENT_TOOL_CALL_SHARE: 0.5 + 0.1 * s})
                                                 for s in (1, 2, 3)], monkeypatch)
    out = tmp_path / "out"
    out.mkdir()
    (summary,) = write_report(log, out)
    table = _table(summary.read_text())
    assert (out / "tool_use.png").is_file()
    assert table[M.AGENT_TOOL_CALL_SHARE] == ["3 (1–3)", "0.6", "0.8", "0.7"]


def test_verl_default_layout_reports_each_log_and_skips_other_jsonl(tmp_path, monkeypatch):
    """``<project>/<experiment>.jsonl`` one level down; a validation-generations dump is not a metrics log."""
    for name in ("a", "b"):
        _write_log(tmp_path / "hpt" / f"{name}.jsonl", [(1, {M.GATE_SFT_FRAC: 1.0})], monkeypatch)
    (tmp_path / "gens").mkdir()
    (tmp_path / "gens" / "0.jsonl").write_text('{"input": "Q1+1=?", "output": "2", "score": 1.0}\n')
    summaries = write_report(tmp_path)
    assert summaries == [tmp_path / "report" / "hpt" / name / "summary.md" for name in ("a", "b")]
    _assert_png(tmp_path / "report" / "hpt" / "a" / "modes.png")


def test_no_log_says_how_to_get_one(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"trainer\.logger=\[console,file\].*VERL_FILE_LOGGER_PATH"):
        write_report(tmp_path)
    with pytest.raises(SystemExit, match="hpt report: no metrics log"):
        hpt_main(["report", str(tmp_path)])
    (tmp_path / "metrics.jsonl").touch()
    with pytest.raises(SystemExit, match="empty until the run logs its first step"):
        hpt_main(["report", str(tmp_path)])


def test_cli_writes_the_report_where_asked_and_says_where(hpt_run, tmp_path, capsys):
    run, _ = hpt_run
    hpt_main(["report", str(run / "metrics.jsonl"), "--out", str(tmp_path / "r")])
    assert capsys.readouterr().out.strip() == f"report written: {tmp_path / 'r' / 'summary.md'}"
    assert _table((tmp_path / "r" / "summary.md").read_text())[M.GATE_SFT_FRAC][1:] == ["0.5", "0", "0.25"]
    _assert_png(tmp_path / "r" / "validation.png")
