"""What the library knows about providers, as data: the registry of named providers, model
strings, LiteLLM's model catalogue, and LiteLLM itself, loaded once and configured.
"""
