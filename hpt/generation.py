"""Plain Hugging Face generation shared by the warm start, offline evaluation and in-process loops.

One implementation of "template the prompt, left-pad, generate, cut at eos" so that what the warm start
measures, what ``hpt eval`` scores and what an in-process engine trains on are produced the same way.
It needs only torch and transformers (no verl); the trainer's rollout server has its own batched engine
(``hpt.cpu.hf_generation``) because it serves concurrent requests.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from hpt.padding import left_pad


def prompt_ids(
    tokenizer: PreTrainedTokenizerBase, messages: Sequence[dict[str, str]], chat_template_kwargs: dict | None = None
) -> list[int]:
    """Token ids of the chat-templated prompt with the generation prompt, as the rollout engine sees it.

    The text is rendered first and then tokenized: in transformers 5 ``apply_chat_template(tokenize=True)``
    returns a BatchEncoding, and the template already holds the special tokens. ``chat_template_kwargs``
    reach the template (e.g. Qwen3's ``enable_thinking=False``).
    """
    text = tokenizer.apply_chat_template(
        list(messages), add_generation_prompt=True, tokenize=False, **(chat_template_kwargs or {})
    )
    return tokenizer(text, add_special_tokens=False)["input_ids"]



@torch.no_grad()
def generate_response_ids(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    prompts: Sequence[list[int]],
    max_new_tokens: int,
    temperature: float | None,
    top_p: float | None = None,
) -> list[list[int]]:
    """Response token ids per prompt, cut just after the first eos; ``temperature=None`` decodes greedily.

    The eos stays in: it is a token the policy chose, so an RL update must train it like any other.
    Prompts are left-padded so every row's next token is at the same position.
    """
    input_ids, attention_mask = left_pad(prompts, tokenizer.pad_token_id)
    width = input_ids.shape[1]
    sampling = {"do_sample": False} if temperature is None else {"do_sample": True, "temperature": temperature}
    was_training = model.training
    model.eval()
    try:
        output = model.generate(
            input_ids=input_ids.to(model.device),  # the model may sit on an accelerator
            attention_mask=attention_mask.to(model.device),
            max_new_tokens=max_new_tokens,
            pad_token_id=tokenizer.pad_token_id,
            eos_token_id=tokenizer.eos_token_id,
            top_k=None,
            top_p=top_p if temperature is not None else None,
            **sampling,
        )
    finally:
        model.train(was_training)
    responses = []
    for ids in output[:, width:].tolist():
        if tokenizer.eos_token_id in ids:
            ids = ids[: ids.index(tokenizer.eos_token_id) + 1]
        responses.append(ids)
    return responses


def generate_texts(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    prompts: Sequence[list[int]],
    max_new_tokens: int,
    temperature: float | None,
) -> list[str]:
    """Decoded responses, cut at eos; ``temperature=None`` decodes greedily."""
    responses = []
    for ids in generate_response_ids(model, tokenizer, prompts, max_new_tokens, temperature):
        if ids and ids[-1] == tokenizer.eos_token_id:
            ids = ids[:-1]
        responses.append(tokenizer.decode(ids, skip_special_tokens=True))
    return responses
