"""verl 0.9.1's Qwen2-VL/Qwen2.5-VL forward on a micro-batch without any image, under transformers 5.

verl replaces the Qwen2.5-VL forward (``verl.models.transformers.qwen2_vl``); for a micro-batch with no
image at all it runs the vision tower on a dummy image so every vision parameter gets a (zero)
gradient, and adds ``0.0 * image_embeds.mean()``. In transformers 5 the vision tower returns a
``BaseModelOutputWithPooling``, not a tensor, so that line raises ``AttributeError: ... has no attribute
'mean'`` (the image path unpacks the output with verl's own ``unpack_visual_output``; this path does not).
Every visual-RAG batch meets it: rollouts of text-only prompts that call no tool carry no image, and a
micro-batch of them has none.

The fix wraps verl's ``_get_input_embeds``: only on that image-free path, the vision tower's output is
unpacked to its embeddings (``unpack_visual_output``) for the duration of the call, so verl's own code
runs unchanged. Installed in every process by ``hpt.plugin``; ``hpt.compat`` checks the two verl pieces.
"""

import verl  # noqa: F401  (first: lets verl load hpt's plugin before the imports below)
import contextlib
import functools

from verl.models.transformers import qwen2_vl
from verl.utils.transformers_compat import unpack_visual_output


@contextlib.contextmanager
def visual_returns_embeddings(visual):
    """For the block's duration, ``visual(...)`` returns its embeddings tensor rather than a model output."""
    own = visual.__dict__.get("forward")
    forward = visual.forward

    def embeddings(*args, **kwargs):
        return unpack_visual_output(forward(*args, **kwargs))[0]

    visual.forward = embeddings
    try:
        yield
    finally:
        if own is None:
            del visual.forward
        else:
            visual.forward = own


def _image_free_safe(get_input_embeds):
    @functools.wraps(get_input_embeds)
    def wrapper(model, input_ids, attention_mask=None, pixel_values=None, pixel_values_videos=None, *args, **kwargs):
        call = functools.partial(
            get_input_embeds, model, input_ids, attention_mask, pixel_values, pixel_values_videos, *args, **kwargs
        )
        if pixel_values is not None or pixel_values_videos is not None:
            return call()
        with visual_returns_embeddings(model.visual):
            return call()

    wrapper.hpt_image_free_safe = True
    return wrapper


def install() -> None:
    """Wrap verl's ``qwen2_vl._get_input_embeds`` once per process."""
    if not getattr(qwen2_vl._get_input_embeds, "hpt_image_free_safe", False):
        qwen2_vl._get_input_embeds = _image_free_safe(qwen2_vl._get_input_embeds)


install()
