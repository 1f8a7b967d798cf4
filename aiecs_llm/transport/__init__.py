"""How a prepared call reaches the provider: one ``Transport`` interface, LiteLLM's
``acompletion`` behind it, and the translation of every failure into the error tree.
"""
