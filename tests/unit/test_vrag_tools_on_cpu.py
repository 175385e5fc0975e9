"""The visual-RAG tools: crop region maths and refusals, page search answering with the right page image,
and a page corpus with a missing image refused with its line."""

import verl  # noqa: F401
import asyncio
import json
from types import SimpleNamespace

import pytest
from PIL import Image

from hpt.tools.crop import CropError, CropTool, crop_observation, crop_zoom
from hpt.tools.index import build_index
from hpt.tools.pages import PageCorpusError, PageSearchTool, read_page_images


def _coded_image(width: int, height: int) -> Image.Image:
    """Pixel (x, y) = (x, y, 7): every pixel says where it came from."""
    image = Image.new("RGB", (width, height))
    image.putdata([(x, y, 7) for y in range(height) for x in range(width)])
    return image


def test_crop_cuts_the_region_and_enlarges_it_by_the_zoom():
    image = _coded_image(10, 8)
    part = crop_zoom(image, [2, 1, 6, 5], zoom=1, min_side=1)
    assert part.size == (4, 4)
    assert part.getpixel((0, 0)) == (2, 1, 7) and part.getpixel((3, 3)) == (5, 4, 7)  # right/bottom exclusive
    assert crop_zoom(image, [2, 1, 6, 5], zoom=3, min_side=1).size == (12, 12)
    assert crop_zoom(image, [0, 0, 10, 8], zoom=2, min_side=1).size == (20, 16)  # the whole image is a region


@pytest.mark.parametrize("region, message", [
    ([1, 2, 3], "left, top, right, bottom"),
    ("0,0,4,4", "left, top, right, bottom"),
    ([0, 0, 4.5, 4], "four integers"),
    ([0, 0, True, 4], "four integers"),
    ([4, 0, 2, 4], "not inside"),
    ([0, 0, 11, 4], "not inside"),
    ([-1, 0, 4, 4], "not inside"),
    ([0, 0, 3, 8], "smaller than 4"),
])
def test_bad_regions_are_refused_with_the_reason(region, message):
    with pytest.raises(CropError, match=message):
        crop_zoom(_coded_image(10, 8), region, zoom=2, min_side=4)


def test_crop_tool_answers_errors_as_observations_and_crops_the_last_image():
    first, last = _coded_image(10, 8), _coded_image(20, 20)
    response, error = crop_observation({"region": [0, 0, 12, 12]}, None, zoom=2, min_side=4)
    assert error and "call search first" in response.text and not response.image
    response, error = crop_observation({"region": [0, 0, 12, 12]}, [first], zoom=2, min_side=4)
    assert error and response.text.startswith("crop error: region [0, 0, 12, 12] is not inside the 10x8 image")
    response, error = crop_observation({"region": [10, 10, 20, 20]}, [first, last], zoom=2, min_side=4)
    assert not error and response.image[0].size == (20, 20) and response.image[0].getpixel((0, 0)) == (10, 10, 7)
    tool = CropTool({"type": "native", "zoom": 2}, None)
    agent_data = SimpleNamespace(image_data=[last], extra_fields={})
    out, _, metrics = asyncio.run(tool.execute("i", {"region": [0, 0, 2, 2]}, agent_data=agent_data))
    assert metrics == {"crop_error": 1} and agent_data.extra_fields["hpt_tool_errors"] == 1
    assert out.text.startswith("crop error:")


def _page_corpus(tmp_path, pages: dict[str, tuple[int, int, int]], missing: str | None = None):
    (tmp_path / "pages").mkdir()
    lines = []
    for i, (text, colour) in enumerate(pages.items()):
        name = f"pages/p{i}.png"
        if text != missing:
            Image.new("RGB", (56, 56), colour).save(tmp_path / name)
        lines.append(json.dumps({"id": i, "contents": text, "image": name}))
    corpus = tmp_path / "corpus.jsonl"
    corpus.write_text("\n".join(lines) + "\n")
    return corpus


PAGES = {"zorbex moons 4 lakes 1": (200, 0, 0), "kalitu moons 2 lakes 9": (0, 200, 0), "vemopa moons 7": (0, 0, 200)}


def test_page_search_answers_with_the_matching_page_image(tmp_path):
    build_index(_page_corpus(tmp_path, PAGES), tmp_path / "index")
    tool = PageSearchTool({"type": "native", "index_dir": str(tmp_path / "index")}, None)
    response, error = tool.observe({"query": "kalitu lakes"})
    assert not error and response.text is None and len(response.image) == 1
    assert response.image[0].size == (56, 56) and response.image[0].getpixel((10, 10)) == (0, 200, 0)
    response, error = tool.observe({"query": "unknownword"})
    assert not error and response.text == "no results" and not response.image
    response, error = tool.observe({"query": ""})
    assert error and response.text.startswith("search error:")


def test_a_missing_page_image_is_reported_with_its_corpus_line(tmp_path):
    corpus = _page_corpus(tmp_path, PAGES, missing="kalitu moons 2 lakes 9")
    with pytest.raises(PageCorpusError, match=r"corpus.jsonl:2: page image .*p1.png cannot be read"):
        read_page_images(corpus)
    build_index(corpus, tmp_path / "index")
    with pytest.raises(PageCorpusError, match="corpus.jsonl:2"):
        PageSearchTool({"type": "native", "index_dir": str(tmp_path / "index")}, None)
