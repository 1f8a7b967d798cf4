"""``aiecs-llm batch``: a JSONL file of prompts, run concurrently and resumably
(``aiecs_llm.batch_cli``).
"""

from __future__ import annotations

from aiecs_llm import batch_cli
from aiecs_llm.commands import Command

COMMAND = Command(
    summary=batch_cli.HELP,
    description=batch_cli.DESCRIPTION,
    examples=batch_cli.EXAMPLES,
    add_arguments=batch_cli.add_arguments,
    run=batch_cli.run,
)
