"""The systems benchmark: what hpt costs on top of verl, and how the CPU trainer's step time scales.

``python -m benchmarks.speed`` runs every part (``__main__``); each part is also a module of its own.
"""
