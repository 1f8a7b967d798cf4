"""The ``aiecs-llm`` command line and the operations server; ``aiecs_llm.cli.main`` is the entry
point. Nothing here is imported by the library itself.
"""
