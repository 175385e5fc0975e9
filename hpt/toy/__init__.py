"""The toy world: a tiny tokenizer and model, synthetic tasks and a warm start, so HPT runs end to end on
a CPU with nothing downloaded.

This package may import transformers, tokenizers and pandas, but never verl: building the toy assets
must not pay for (or depend on) the trainer stack.
"""
