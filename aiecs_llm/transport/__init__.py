"""How a call leaves: the ``Transport`` interface (``base``) and its two implementations,
``litellm.acompletion`` (``litellm``) and the fast, generic driver of LiteLLM's provider
configuration classes (``fast``, with ``provider_request``, ``routes``, ``chunks`` and ``sse``),
and the translation of every failure into the error tree (``errors``).
"""
