"""A verl function tool for the agent tests: fixed facts by query (verl registers a function tool name once
per process, so every test loads this one file)."""
from verl.tools.function_tool import function_tool


@function_tool("search")
def search(query: str) -> str:
    """Look a fact up.

    Args:
        query: what to look up
    """
    return RESULTS.get(query, "nothing found")


RESULTS = {"zorbex moons": "zorbex has 4 moons", "quil moons": "quil has 3 moons"}
