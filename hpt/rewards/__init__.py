"""Rule-based verifiers in verl's ``custom_reward_function`` contract.

``dispatch.py`` is the file verl loads (``compute_score`` routes each row by ``data_source`` through
``registry``); ``math.py`` scores final answers of math tasks, ``arithmetic.py`` the tiny CPU task;
``extract.py`` (answer extraction, shared with the data preparers) and ``equivalence.py`` (answer
comparison) serve it; ``startup.py`` checks before training that every ``data_source`` in the data has
a verifier. Nothing is imported here, so the data
preparers can use ``extract`` without loading sympy.
"""
