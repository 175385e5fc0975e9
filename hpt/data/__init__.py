"""Real-data side: preparers that turn public datasets (local files) into verl parquet, and the start-up
checks every training file goes through. The toy world lives in ``hpt.toy``.
"""
