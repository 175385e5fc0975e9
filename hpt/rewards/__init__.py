"""Rule-based verifiers in verl's ``custom_reward_function`` contract.

``dispatch.py`` is the file verl loads (``compute_score`` routes each row by ``data_source`` through
``registry``); ``math.py`` scores final answers of math tasks (lenient or strict mode), ``arithmetic.py``
the tiny CPU task; ``options.py`` (the math verifier's options and where they come from), ``extract.py``
(the answer formats Math-Verify does not read, shared with the data preparers) and ``equivalence.py``
(Math-Verify's reading and verdict under a deadline) serve it; ``startup.py`` checks before training
that every ``data_source`` in the data has a verifier. Nothing is imported here, so the data preparers
can use ``extract`` without loading sympy.
"""
