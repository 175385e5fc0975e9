"""hpt: hybrid post-training (SFT + RL in one loop) as a verl extension.

Importing ``hpt`` must stay light: it imports neither verl nor Ray, so verl's plugin loader can
import ``hpt.plugin`` without triggering platform detection too early.
"""

__version__ = "0.1.0"
