"""A synthetic fact-lookup task that needs the search tool: invented entities, their numbers, a corpus.

Every entity (``zorbex``) has a small number per attribute (``moons``); each fact is one corpus line,
``zorbex moons 4``. A question asks for one fact (``zorbex moons?`` -> ``#4``) or the sum or difference
of two (``zorbex moons + kalitu roads?`` -> ``4+7=11#11``). The names are random syllables, and the
validation and test questions name entities no training question names, so a model can only answer
them by searching. The demonstration is the trajectory an expert with the tool would produce: one
hermes ``search`` call per fact, the fact as the tool's answer, then the answer after ``#`` (what
``hpt.rewards.arithmetic`` scores). It is stored as ``extra_info.target_turns`` (a JSON string of the
messages after the prompt), the rows select verl's tool agent loop with ``agent_name``.
"""

from __future__ import annotations

import json
import os
import random
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hpt.atomic import write_atomically
from hpt.toy.arithmetic import write_parquet  # noqa: F401  (re-exported: the toy's one parquet writer)
from hpt.toy.tool_model import tool_call_text

DATA_SOURCE = "hpt/facts"
AGENT_NAME = "tool_agent"
TOOL_NAME = "search"
ATTRIBUTES = ("moons", "lakes", "roads", "hills")
CONSONANTS = "bdfgklmnprstvz"
VOWELS = "aeiou"
KINDS = ("lookup", "sum", "difference")
SPLITS = ("train", "val", "test")


@dataclass(frozen=True)
class Fact:
    """One corpus line: ``<entity> <attribute> <value>``."""

    entity: str
    attribute: str
    value: int

    @property
    def query(self) -> str:
        return f"{self.entity} {self.attribute}"

    @property
    def text(self) -> str:
        return f"{self.query} {self.value}"


@dataclass(frozen=True)
class FactWorld:
    """The facts, and which entities each split's questions may name (disjoint across splits)."""

    facts: dict[tuple[str, str], Fact]
    entities: dict[str, tuple[str, ...]]

    def corpus(self) -> list[str]:
        """The corpus documents, one fact each, in a fixed order."""
        return [fact.text for fact in self.facts.values()]


def _name(rng: random.Random) -> str:
    return "".join(rng.choice(CONSONANTS) + rng.choice(VOWELS) for _ in range(3))


def make_world(
    n_entities: int, seed: int, max_value: int = 9, split_shares: Sequence[float] = (0.6, 0.2, 0.2)
) -> FactWorld:
    """``n_entities`` distinct invented names, every attribute drawn in ``0..max_value``, entities dealt to splits."""
    if n_entities < 2 * len(SPLITS):
        raise ValueError(f"n_entities must be >= {2 * len(SPLITS)} (two per split), got {n_entities}")
    if max_value < 1:
        raise ValueError(f"max_value must be >= 1, got {max_value}")
    rng = random.Random(f"{DATA_SOURCE}:world:{seed}")
    names: list[str] = []
    while len(names) < n_entities:
        name = _name(rng)
        if name not in names and name not in ATTRIBUTES:
            names.append(name)
    facts = {
        (name, attribute): Fact(name, attribute, rng.randint(0, max_value))
        for name in names
        for attribute in ATTRIBUTES
    }
    bounds = [round(sum(split_shares[: i + 1]) * n_entities) for i in range(len(SPLITS))]
    starts = [0, *bounds[:-1]]
    entities = {split: tuple(names[a:b]) for split, a, b in zip(SPLITS, starts, bounds, strict=True)}
    if min(len(group) for group in entities.values()) < 2:
        raise ValueError(f"split_shares {tuple(split_shares)} leave a split with fewer than 2 of {n_entities} entities")
    return FactWorld(facts=facts, entities=entities)


@dataclass(frozen=True)
class FactQuestion:
    """A question, the facts it needs in the order a demonstration looks them up, and the integer answer."""

    question: str
    facts: tuple[Fact, ...]
    answer: int
    final: str  # the demonstration's last assistant turn

    def target_turns(self) -> list[dict[str, str]]:
        """The expert trajectory after the prompt: call, observation, ..., answer."""
        turns: list[dict[str, str]] = []
        for fact in self.facts:
            turns.append({"role": "assistant", "content": tool_call_text(TOOL_NAME, {"query": fact.query})})
            turns.append({"role": "tool", "content": fact.text})
        turns.append({"role": "assistant", "content": self.final})
        return turns


def make_question(rng: random.Random, world: FactWorld, split: str, kind: str) -> FactQuestion:
    """One question of ``kind`` about entities of ``split`` (two different facts for sum and difference)."""
    entities = world.entities[split]
    first = world.facts[(rng.choice(entities), rng.choice(ATTRIBUTES))]
    if kind == "lookup":
        return FactQuestion(f"{first.query}?", (first,), first.value, f"#{first.value}")
    second = first
    while second == first:
        second = world.facts[(rng.choice(entities), rng.choice(ATTRIBUTES))]
    sign = "+" if kind == "sum" else "-"
    answer = first.value + second.value if kind == "sum" else first.value - second.value
    final = f"{first.value}{sign}{second.value}={answer}#{answer}"
    return FactQuestion(f"{first.query} {sign} {second.query}?", (first, second), answer, final)


def make_rows(world: FactWorld, n: int, seed: int, split: str, kind_weights: Sequence[float]) -> list[dict[str, Any]]:
    """``n`` verl rows for ``split``; kinds drawn with ``kind_weights`` (lookup, sum, difference).

    ``extra_info.index`` counts from 0 within the split; questions may repeat (few one-lookup questions
    exist per split), as in the arithmetic task.
    """
    if len(kind_weights) != len(KINDS) or min(kind_weights) < 0 or sum(kind_weights) <= 0:
        raise ValueError(
            f"kind_weights needs {len(KINDS)} non-negative weights ({', '.join(KINDS)}), got {kind_weights}"
        )
    rng = random.Random(f"{DATA_SOURCE}:{split}:{seed}")
    rows = []
    for index in range(n):
        kind = rng.choices(KINDS, weights=kind_weights)[0]
        question = make_question(rng, world, split, kind)
        rows.append(
            {
                "data_source": DATA_SOURCE,
                "agent_name": AGENT_NAME,
                "prompt": [{"role": "user", "content": question.question}],
                "ability": "tool",
                "reward_model": {"style": "rule", "ground_truth": str(question.answer)},
                "extra_info": {
                    "index": index,
                    "split": split,
                    "kind": kind,
                    "target_turns": json.dumps(question.target_turns()),
                },
            }
        )
    return rows


def guessed_turns(kind: str, rng: random.Random) -> list[dict[str, str]]:
    """A trajectory that answers without the tool: the final answer's form, with guessed values.

    What a model that sometimes answers from memory writes; the agent warm start mixes some in so the
    warm model skips the tool on part of its rollouts (and is then almost always wrong), which leaves
    the share of trajectories that call the tool room to rise.
    """
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {', '.join(KINDS)}, got {kind!r}")
    first, second = rng.randint(0, 9), rng.randint(0, 9)
    if kind == "lookup":
        return [{"role": "assistant", "content": f"#{first}"}]
    sign, answer = ("+", first + second) if kind == "sum" else ("-", first - second)
    return [{"role": "assistant", "content": f"{first}{sign}{second}={answer}#{answer}"}]


def target_turns_of(row: dict[str, Any]) -> list[dict[str, str]]:
    """The demonstration trajectory of a row (parsed from its JSON string)."""
    return json.loads(row["extra_info"]["target_turns"])


def write_corpus(world: FactWorld, path: str | os.PathLike[str]) -> None:
    """The corpus as jsonl, ``{"id", "contents"}`` per line (the format ``hpt.tools.build_index`` reads)."""
    lines = [json.dumps({"id": i, "contents": text}) for i, text in enumerate(world.corpus())]
    write_atomically(Path(path), lambda tmp: tmp.write_text("\n".join(lines) + "\n"))
