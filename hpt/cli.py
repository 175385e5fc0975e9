"""The ``hpt`` command: ``hpt eval`` (offline evaluation), ``hpt report`` (a run's curves and summary).

Training itself is ``python -m hpt.main``.
"""

from __future__ import annotations

import argparse
import json
import logging
from collections.abc import Sequence
from pathlib import Path

DEFAULT_REWARD = "rewards/dispatch.py"  # hpt's verifier dispatcher by data_source, inside the package


def _eval_parser(subparsers) -> None:
    parser = subparsers.add_parser("eval", help="mean@k / pass@k of a model or verl checkpoint on verl parquet files")
    parser.add_argument("model", help="Hugging Face model dir, or a verl checkpoint dir (global_step_N)")
    parser.add_argument("data", nargs="+", help="verl-format parquet file(s), e.g. from python -m hpt.data.prepare")
    parser.add_argument("--out", type=Path, required=True, help="JSON file for metrics + protocol")
    parser.add_argument("--k", type=int, default=1, help="samples per prompt")
    parser.add_argument("--temperature", type=float, default=0.0, help="0 = greedy")
    parser.add_argument("--top-p", type=float, default=1.0)
    parser.add_argument("--max-new-tokens", type=int, default=1024)
    parser.add_argument("--backend", choices=("hf", "vllm"), default="hf")
    parser.add_argument("--no-thinking", action="store_true", help="Qwen3: pass enable_thinking=False to the template")
    parser.add_argument("--reward-path", default=None, help="reward .py file (default: hpt's verifier dispatcher)")
    parser.add_argument("--reward-name", default="compute_score")
    parser.add_argument("--seed", type=int, default=0)


def _run_eval(args: argparse.Namespace) -> None:
    from hpt.config.resolvers import package_path
    from hpt.eval.evaluate import EvalProtocol, evaluate, load_scorer, write_result

    protocol = EvalProtocol(
        k=args.k,
        temperature=args.temperature,
        top_p=args.top_p,
        max_new_tokens=args.max_new_tokens,
        chat_template_kwargs={"enable_thinking": False} if args.no_thinking else {},
        backend=args.backend,
        seed=args.seed,
    )
    reward_path = args.reward_path or package_path(DEFAULT_REWARD)
    result = evaluate(args.model, args.data, protocol, load_scorer(reward_path, args.reward_name), reward_path)
    write_result(result, args.out)
    print(json.dumps(result["metrics"], indent=2))


def _report_parser(subparsers) -> None:
    parser = subparsers.add_parser("report", help="PNG curves + summary.md from a run's metrics (verl's file logger)")
    parser.add_argument("run", type=Path, help="run directory holding the metrics *.jsonl, or the .jsonl file itself")
    parser.add_argument("--out", type=Path, default=None, help="output directory (default: RUN/report)")


def _run_report(args: argparse.Namespace) -> None:
    from hpt.report import write_report

    for summary in write_report(args.run, args.out):
        print(f"report written: {summary}")


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="hpt", description=__doc__.splitlines()[0])
    subparsers = parser.add_subparsers(dest="command", required=True)
    _eval_parser(subparsers)
    _report_parser(subparsers)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    run = {"eval": _run_eval, "report": _run_report}[args.command]
    try:
        run(args)
    except (ValueError, FileNotFoundError, AttributeError) as exc:
        raise SystemExit(f"hpt {args.command}: {exc}") from None


if __name__ == "__main__":
    main()
