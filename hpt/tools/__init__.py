"""Tools for verl's tool agent loop: ``index`` (BM25 over a corpus file, no verl), ``build_index`` (its CLI),
``search`` (the ``search`` ``BaseTool``, local index or retrieval server), ``retrieval_server`` (HTTP).

Importing this package imports nothing heavy: ``search`` pulls verl in, ``index`` only ``bm25s`` when used.
"""
