"""The verl adapter: trainer hooks, batch surgery, the whole-loss and the engine that counts globally.

Modules here may be imported first by a Ray worker (to unpickle the loss), so each starts with
``import verl`` to let verl load hpt's plugin (and the CPU platform) before anything else.
"""
