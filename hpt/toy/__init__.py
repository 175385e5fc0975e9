"""The toy world: a tiny tokenizer and model, synthetic tasks and a warm start, so HPT runs end to end on
a CPU with nothing downloaded; and the in-process engine (``engine.py``, ``loss.py``) that trains every
method on it in one process, for the learning benchmark and ``examples/minimal_hpt.py``.

This package may import transformers, tokenizers and pandas, but never verl: building the toy assets
must not pay for (or depend on) the trainer stack.
"""
