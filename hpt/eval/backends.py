"""Generation backends for offline evaluation: Hugging Face ``generate`` (CPU or one GPU) and vLLM (GPU)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from hpt.eval.evaluate import EvalProtocol

HF_BATCH = 32  # prompts x samples per generate call: bounded memory on CPU


def generate(model_dir: Path, messages: Sequence[list[dict]], protocol: EvalProtocol) -> list[list[str]]:
    """``protocol.k`` decoded responses per prompt."""
    if protocol.backend == "vllm":
        return _vllm_generate(model_dir, messages, protocol)
    return _hf_generate(model_dir, messages, protocol)


def _hf_generate(model_dir: Path, messages: Sequence[list[dict]], protocol: EvalProtocol) -> list[list[str]]:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from hpt.generation import generate_response_ids, prompt_ids

    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    model = AutoModelForCausalLM.from_pretrained(model_dir).to(device)
    prompts = [prompt_ids(tokenizer, m, protocol.chat_template_kwargs) for m in messages]
    flat = [ids for ids in prompts for _ in range(protocol.k)]
    temperature = protocol.temperature or None
    texts: list[str] = []
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(protocol.seed)
        for start in range(0, len(flat), HF_BATCH):
            chunk = flat[start : start + HF_BATCH]
            for ids in generate_response_ids(model, tokenizer, chunk, protocol.max_new_tokens, temperature,
                                             top_p=protocol.top_p):
                texts.append(tokenizer.decode(ids, skip_special_tokens=True))
    return [texts[i * protocol.k : (i + 1) * protocol.k] for i in range(len(messages))]


def _vllm_generate(model_dir: Path, messages: Sequence[list[dict]], protocol: EvalProtocol) -> list[list[str]]:
    """vLLM path (GPU only; needs ``pip install -e .[gpu]``)."""
    try:
        from vllm import LLM, SamplingParams
    except ImportError as exc:
        raise RuntimeError("the vllm backend needs vLLM: pip install -e '.[gpu]' on a GPU machine") from exc
    llm = LLM(model=str(model_dir), seed=protocol.seed)
    params = SamplingParams(n=protocol.k, temperature=protocol.temperature, top_p=protocol.top_p,
                            max_tokens=protocol.max_new_tokens, seed=protocol.seed)
    outputs = llm.chat(list(messages), params, chat_template_kwargs=protocol.chat_template_kwargs or None)
    return [[choice.text for choice in output.outputs] for output in outputs]
