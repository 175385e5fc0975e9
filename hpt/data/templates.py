"""Prompt templates for the math preparers: what the user turn of a verl ``prompt`` column says.

Every template asks for the final answer in ``\\boxed{}``, because that is what the verifier reads
(``hpt.rewards.extract.last_boxed``); a prompt that does not say so gets rollouts that are right but
unscorable. The ``prompt`` column is always a list of chat messages (verl's schema); the trainer
applies the model's chat template to it. Three templates:

``boxed_instruct``
    Instruct/chat models: one user turn, the question followed by the boxed instruction.

``boxed_base``
    Base models: a plain-text completion prompt ("Problem: ... Solution:") stored as the only user
    turn. verl always applies a chat template, so run base models with a pass-through template that
    emits the user text verbatim::

        actor_rollout_ref.model.custom_chat_template='<PASSTHROUGH_CHAT_TEMPLATE>'

    (``PASSTHROUGH_CHAT_TEMPLATE`` below; the assistant turn ends with the EOS token, which is what
    demonstration rows need.)

``qwen3_nonthinking``
    Qwen3 with thinking switched off. The messages are exactly those of ``boxed_instruct``:
    ``enable_thinking`` is an argument of Qwen3's chat template, not part of the prompt text, so it is
    set in the trainer config, not in the parquet. In verl 0.9.1 the key is
    ``data.apply_chat_template_kwargs`` (``{}`` by default in ``ppo_trainer``'s data config; read by
    the RL dataset's prompt-length filter and by the agent loop that templates rollout prompts)::

        ++data.apply_chat_template_kwargs.enable_thinking=false

    The ``++`` is needed: the config is struct, so the key cannot be assigned without ``+`` (and even
    ``data.apply_chat_template_kwargs={enable_thinking:false}`` is refused), while ``++`` adds it or
    overrides it when a config already sets it. Verified by composing hpt's trainer configs.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

BOXED_INSTRUCTION = "Work through the problem step by step, then give your final answer inside \\boxed{}."

# Emits user turns verbatim and assistant turns followed by EOS: plain-text prompting through verl's
# chat-template path, for base models whose own template (if any) would wrap the prompt in chat markup.
PASSTHROUGH_CHAT_TEMPLATE = (
    "{%- for message in messages -%}"
    "{%- if message['role'] == 'assistant' -%}{{- message['content'] + eos_token -}}"
    "{%- else -%}{{- message['content'] -}}"
    "{%- endif -%}"
    "{%- endfor -%}"
)

QWEN3_NONTHINKING_OVERRIDE = "++data.apply_chat_template_kwargs.enable_thinking=false"

Messages = list[dict[str, str]]


@dataclass(frozen=True)
class PromptTemplate:
    """How a question becomes prompt messages, plus the trainer overrides the template relies on."""

    name: str
    render: Callable[[str], str]
    overrides: tuple[str, ...] = ()
    description: str = ""

    def messages(self, question: str) -> Messages:
        """The ``prompt`` column value for ``question``: one user turn."""
        return [{"role": "user", "content": self.render(question.strip())}]


def _instruct(question: str) -> str:
    return f"{question}\n\n{BOXED_INSTRUCTION}"


def _base(question: str) -> str:
    return f"Problem:\n{question}\n\n{BOXED_INSTRUCTION}\n\nSolution:"


TEMPLATES: dict[str, PromptTemplate] = {
    template.name: template
    for template in (
        PromptTemplate("boxed_instruct", _instruct, description="chat/instruct models"),
        PromptTemplate(
            "boxed_base",
            _base,
            overrides=("actor_rollout_ref.model.custom_chat_template=<hpt.data.templates.PASSTHROUGH_CHAT_TEMPLATE>",),
            description="base models, plain-text completion prompt",
        ),
        PromptTemplate(
            "qwen3_nonthinking",
            _instruct,
            overrides=(QWEN3_NONTHINKING_OVERRIDE,),
            description="Qwen3 with thinking off (chat-template kwarg set in the trainer config)",
        ),
    )
}
DEFAULT_TEMPLATE = "boxed_instruct"


def get_template(name: str) -> PromptTemplate:
    """Look a template up by name; an unknown name lists the valid ones."""
    try:
        return TEMPLATES[name]
    except KeyError:
        raise ValueError(f"unknown prompt template {name!r}; choose one of {sorted(TEMPLATES)}") from None


def build_prompt(question: str, template: str = DEFAULT_TEMPLATE) -> Messages:
    """Prompt messages for ``question`` under the named template."""
    return get_template(template).messages(question)
