"""How a prepared call reaches the provider: one ``Transport`` interface (``base``) with two
implementations, LiteLLM's ``acompletion`` (``litellm``) and the fast, generic driver of
LiteLLM's provider configuration classes (``fast``, with ``provider_request``, ``routes``,
``chunks`` and ``sse``); and the translation of every failure into the error tree (``errors``).
"""
