"""Tool schemas (OpenAI function format) as plain dicts, importable without verl."""

from __future__ import annotations

SEARCH_SCHEMA = {
    "type": "function",
    "function": {
        "name": "search",
        "description": "Search the corpus; returns the best matching documents.",
        "parameters": {
            "type": "object",
            "properties": {"query": {"type": "string", "description": "what to look up"}},
            "required": ["query"],
        },
    },
}

PAGE_SEARCH_SCHEMA = {
    "type": "function",
    "function": {
        "name": "search",
        "description": "Search the document pages; returns the image of the best matching page.",
        "parameters": {
            "type": "object",
            "properties": {"query": {"type": "string", "description": "what to look up"}},
            "required": ["query"],
        },
    },
}

CROP_SCHEMA = {
    "type": "function",
    "function": {
        "name": "crop",
        "description": "Zoom into a region of the last image; returns the enlarged region.",
        "parameters": {
            "type": "object",
            "properties": {
                "region": {
                    "type": "array",
                    "items": {"type": "integer"},
                    "description": "[left, top, right, bottom] in pixels of the last image",
                }
            },
            "required": ["region"],
        },
    },
}
