"""The visual-RAG toy: the fact world of ``hpt.toy.facts`` printed as page images, questions that need a page.

Every entity gets one 112x112 page (its name, then one ``attribute value`` line per attribute), rendered
with Pillow; the page's text is its corpus document, so BM25 on the text finds the page and the
``search`` tool answers with the page's image. A question asks one fact (``zorbex moons?``); its
demonstration is the VRAG-RL pattern (search, region selection, answer): ``search`` for the fact, read
the page image, ``crop`` the fact's line (the crop tool's region maths, enlarged), answer ``#<value>``
(scored by ``hpt.rewards.arithmetic``, data source ``hpt/vrag``). Validation and test questions name
entities no training question names (the fact world's split), so only retrieval can answer them.

Demonstrations are ``extra_info.target_turns`` whose tool messages name their observation images by
absolute path (``"images": [...]``): the page file and the crop file the builder wrote.
"""

from __future__ import annotations

import json
import random
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from PIL import Image, ImageDraw, ImageFont

from hpt.toy.facts import ATTRIBUTES, AGENT_NAME, Fact, FactWorld, make_question
from hpt.toy.tool_model import tool_call_text

DATA_SOURCE = "hpt/vrag"
SEARCH, CROP = "search", "crop"
PAGE_SIDE = 112  # 16 image tokens: the tiny VLM's largest image
LINE_HEIGHT = 20
TOP_MARGIN = 4
FONT_SIZE = 14
ZOOM = 2


def page_text(world: FactWorld, entity: str) -> str:
    """The page's corpus document: the entity, then ``attribute value`` per attribute."""
    return " ".join([entity, *(f"{a} {world.facts[(entity, a)].value}" for a in ATTRIBUTES)])


def line_region(attribute: str) -> list[int]:
    """``[left, top, right, bottom]`` of an attribute's line on a page (line 0 is the entity's name)."""
    top = TOP_MARGIN + LINE_HEIGHT * (1 + ATTRIBUTES.index(attribute))
    return [0, top, PAGE_SIDE, top + LINE_HEIGHT]


def render_page(world: FactWorld, entity: str) -> Image.Image:
    """Black text on white, one line per row of the page."""
    image = Image.new("RGB", (PAGE_SIDE, PAGE_SIDE), (255, 255, 255))
    draw = ImageDraw.Draw(image)
    font = ImageFont.load_default(size=FONT_SIZE)
    lines = [entity, *(f"{a} {world.facts[(entity, a)].value}" for a in ATTRIBUTES)]
    for row, line in enumerate(lines):
        draw.text((4, TOP_MARGIN + LINE_HEIGHT * row + 2), line, fill=(0, 0, 0), font=font)
    return image


def entities(world: FactWorld) -> list[str]:
    """Every entity of the world, in a fixed order (one page each)."""
    return [name for split in world.entities.values() for name in split]


def write_pages(world: FactWorld, out_dir: Path) -> Path:
    """``out_dir/pages/<entity>.png`` and ``out_dir/corpus.jsonl`` (text + relative image path); the corpus."""
    (out_dir / "pages").mkdir(parents=True, exist_ok=True)
    lines = []
    for i, entity in enumerate(entities(world)):
        render_page(world, entity).save(out_dir / "pages" / f"{entity}.png")
        lines.append(json.dumps({"id": i, "contents": page_text(world, entity), "image": f"pages/{entity}.png"}))
    corpus = out_dir / "corpus.jsonl"
    corpus.write_text("\n".join(lines) + "\n")
    return corpus


def target_turns(fact: Fact, page: Path, crop: Path) -> list[dict[str, Any]]:
    """search -> page image -> crop of the fact's line -> the answer."""
    return [
        {"role": "assistant", "content": tool_call_text(SEARCH, {"query": fact.query})},
        {"role": "tool", "content": "", "images": [str(page)]},
        {"role": "assistant", "content": tool_call_text(CROP, {"region": line_region(fact.attribute)})},
        {"role": "tool", "content": "", "images": [str(crop)]},
        {"role": "assistant", "content": f"#{fact.value}"},
    ]


def crop_name(entity: str, attribute: str) -> str:
    """The file name of the crop of an entity's attribute line."""
    return f"{entity}_{attribute}.png"


def make_rows(world: FactWorld, n: int, seed: int, split: str, pages_dir: Path, crops_dir: Path) -> list[dict]:
    """``n`` tool-agent rows of ``split`` (absolute image paths into ``pages_dir``/``crops_dir``)."""
    rng = random.Random(f"{DATA_SOURCE}:{split}:{seed}")
    rows = []
    for index in range(n):
        question = make_question(rng, world, split, "lookup")
        fact = question.facts[0]
        turns = target_turns(fact, pages_dir / f"{fact.entity}.png", crops_dir / crop_name(fact.entity, fact.attribute))
        rows.append(
            {
                "data_source": DATA_SOURCE,
                "agent_name": AGENT_NAME,
                "prompt": [{"role": "user", "content": question.question}],
                "ability": "tool",
                "reward_model": {"style": "rule", "ground_truth": str(question.answer)},
                "extra_info": {"index": index, "split": split, "target_turns": json.dumps(turns)},
            }
        )
    return rows


def facts_asked(rows: Iterable[dict]) -> set[tuple[str, str]]:
    """(entity, attribute) of every row's question, read back from its search call."""
    asked = set()
    for row in rows:
        call = json.loads(row["extra_info"]["target_turns"])[0]["content"]
        query = json.loads(call.removeprefix("<tool_call>").removesuffix("</tool_call>"))["arguments"]["query"]
        entity, attribute = query.split(" ")
        asked.add((entity, attribute))
    return asked
