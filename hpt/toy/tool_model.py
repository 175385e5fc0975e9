"""A tool-capable character tokenizer, compact ChatML template and tiny Qwen3, saved as an HF model dir.

The arithmetic tiny model (``hpt.toy.tiny_model``) cannot call a tool: its 22-character alphabet has no
``<``, ``{`` or letters and its template refuses system and tool roles. This variant keeps the same
architecture but speaks every printable ASCII character plus newline, Qwen's turn markers and hermes
tool markers, so verl's ``ToolAgentLoop`` runs unchanged on it:

- ``model_type`` stays ``qwen3`` so verl picks its Qwen Continuous-Token builder; that builder looks up
  ``<|im_end|>`` and ``\\n``, which here are real tokens (with ``<unk>`` standing in, boundaries go wrong
  silently).
- ``<tool_call>``/``</tool_call>``/``<tool_response>``/``</tool_response>`` are added tokens that are
  *not special*, as in Qwen: the reward decodes responses with ``skip_special_tokens=True`` and must
  still see them.
- The template accepts ``tools=``, renders system, user, assistant (with ``tool_calls`` whose
  ``arguments`` is a dict or a JSON string) and tool roles (consecutive tool messages grouped into one
  user turn of ``<tool_response>`` blocks, as Qwen does), and is prefix-stable: rendering
  ``messages[:k]`` is a prefix of rendering ``messages``, which verl's suffix diff requires.
"""

from __future__ import annotations

import json
import os
import string
from pathlib import Path

from tokenizers import AddedToken, Regex, Tokenizer, decoders, models, pre_tokenizers
from transformers import PreTrainedTokenizerFast, Qwen3ForCausalLM

from hpt.toy.tiny_model import build_model

PAD, IM_START, IM_END, UNK = "<|endoftext|>", "<|im_start|>", "<|im_end|>", "<unk>"
SPECIAL_TOKENS = (PAD, IM_START, IM_END)
TOOL_MARKERS = ("<tool_call>", "</tool_call>", "<tool_response>", "</tool_response>")
CHARACTERS = "".join(c for c in string.printable if c.isprintable()) + "\n"  # 95 printable ASCII + newline
GENERATION_PROMPT = f"{IM_START}assistant\n"
MAX_POSITIONS = 512

# A message's text: its string content, or (with ``image_part``) its list of parts as verl builds them for a
# vision-language model ({"type": "image", ...} rendered as ``image_part``, {"type": "text", "text": ...}).
_TEXT_CONTENT = "{%- set content = message['content'] if message['content'] is string else '' -%}"
_PARTS_CONTENT = (
    "{%- set parts = namespace(text='') -%}"
    "{%- if message['content'] is string -%}{%- set parts.text = message['content'] -%}"
    "{%- elif message['content'] -%}{%- for part in message['content'] -%}"
    "{%- if part['type'] == 'image' or 'image' in part -%}{%- set parts.text = parts.text + IMAGE_PART -%}"
    "{%- elif part['type'] == 'text' -%}{%- set parts.text = parts.text + part['text'] -%}{%- endif -%}"
    "{%- endfor -%}{%- endif -%}"
    "{%- set content = parts.text -%}"
)


def chat_template(image_part: str | None = None) -> str:
    """The compact ChatML template; with ``image_part``, user and tool turns may be lists of image/text parts.

    A tool call renders as hermes JSON with json.dumps' default separators (what jinja's tojson writes), so
    a demonstration written with ``tool_call_text`` is exactly what the template renders for the same call.
    """
    content = _TEXT_CONTENT if image_part is None else _PARTS_CONTENT.replace("IMAGE_PART", repr(image_part))
    return _TEMPLATE.replace(_TEXT_CONTENT, content)


_TEMPLATE = (
    "{%- set ns = namespace(start=0) -%}"
    "{%- if tools -%}"
    "{{- '<|im_start|>system\\n' -}}"
    "{%- if messages and messages[0]['role'] == 'system' -%}"
    "{{- messages[0]['content'] + '\\n' -}}{%- set ns.start = 1 -%}{%- endif -%}"
    "{{- 'Tools: ' -}}"
    "{%- for tool in tools -%}"
    "{%- set fn = tool['function'] if tool['function'] is defined else tool -%}"
    "{{- fn['name'] + '(' + (fn['parameters']['properties'] | list | join(',')) + ')' -}}"
    "{%- if not loop.last -%}{{- ' ' -}}{%- endif -%}"
    "{%- endfor -%}"
    "{{- '<|im_end|>\\n' -}}"
    "{%- endif -%}"
    "{%- for message in messages[ns.start:] -%}"
    "{%- set content = message['content'] if message['content'] is string else '' -%}"
    "{%- if message['role'] in ('system', 'user') -%}"
    "{{- '<|im_start|>' + message['role'] + '\\n' + content + '<|im_end|>\\n' -}}"
    "{%- elif message['role'] == 'assistant' -%}"
    "{{- '<|im_start|>assistant\\n' + content -}}"
    "{%- for call in (message['tool_calls'] or []) -%}"
    "{%- set fn = call['function'] if call['function'] is defined else call -%}"
    "{%- set args = fn['arguments'] if fn['arguments'] is string else (fn['arguments'] | tojson) -%}"
    "{{- '<tool_call>{\"name\": ' + (fn['name'] | tojson) + ', \"arguments\": ' + args + '}</tool_call>' -}}"
    "{%- endfor -%}"
    "{{- '<|im_end|>\\n' -}}"
    "{%- elif message['role'] == 'tool' -%}"
    "{%- if loop.first or loop.previtem['role'] != 'tool' -%}{{- '<|im_start|>user\\n' -}}{%- endif -%}"
    "{{- '<tool_response>' + content + '</tool_response>' -}}"
    "{%- if loop.last or loop.nextitem['role'] != 'tool' -%}{{- '<|im_end|>\\n' -}}{%- endif -%}"
    "{%- else -%}"
    "{{- raise_exception('the tiny tool chat template has no role ' + message['role']) -}}"
    "{%- endif -%}"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}{{- '<|im_start|>assistant\\n' -}}{%- endif -%}"
)
CHAT_TEMPLATE = chat_template()


def tool_call_text(name: str, arguments: dict) -> str:
    """The hermes text of one call, byte-identical to the template's rendering of the same call."""
    return f'<tool_call>{{"name": {json.dumps(name)}, "arguments": {json.dumps(arguments)}}}</tool_call>'


def build_tool_tokenizer() -> PreTrainedTokenizerFast:
    """One token per character; pad/im_start/im_end are ids 0/1/2, then characters, ``<unk>``, tool markers.

    ``[\\s\\S]`` rather than ``.`` splits the text: Oniguruma's ``.`` does not match a newline, which
    would turn every ``\\n`` into ``<unk>``.
    """
    vocab = {token: i for i, token in enumerate([*SPECIAL_TOKENS, *CHARACTERS, UNK])}
    backend = Tokenizer(models.WordLevel(vocab=vocab, unk_token=UNK))
    backend.pre_tokenizer = pre_tokenizers.Split(Regex(r"[\s\S]"), behavior="isolated")
    backend.decoder = decoders.Fuse()
    backend.add_special_tokens([AddedToken(token, special=True, normalized=False) for token in SPECIAL_TOKENS])
    backend.add_tokens([AddedToken(token, special=False, normalized=False) for token in TOOL_MARKERS])
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=backend,
        pad_token=PAD,
        eos_token=IM_END,
        unk_token=UNK,
        additional_special_tokens=[IM_START],
        clean_up_tokenization_spaces=False,
        model_max_length=MAX_POSITIONS,
    )
    tokenizer.chat_template = CHAT_TEMPLATE
    return tokenizer


def build_tool_model(tokenizer: PreTrainedTokenizerFast, seed: int) -> Qwen3ForCausalLM:
    """The tiny Qwen3 of ``hpt.toy.tiny_model`` with 512 positions: a trajectory with tool results is long."""
    return build_model(tokenizer, seed, MAX_POSITIONS)


def save_tool_model(out_dir: str | os.PathLike[str], seed: int) -> int:
    """Write tokenizer and model into ``out_dir``; return the parameter count for the build summary."""
    out_dir = Path(out_dir)
    tokenizer = build_tool_tokenizer()
    model = build_tool_model(tokenizer, seed)
    tokenizer.save_pretrained(out_dir)
    model.save_pretrained(out_dir)
    return sum(p.numel() for p in model.parameters())
