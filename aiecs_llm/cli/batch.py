"""``aiecs-llm batch``: a JSONL file of prompts, run concurrently and resumably
(``aiecs_llm.cli.batch_run``).
"""

from __future__ import annotations

from aiecs_llm.cli import batch_run as batch_cli
from aiecs_llm.cli.command import Command

COMMAND = Command(
    summary=batch_cli.HELP,
    description=batch_cli.DESCRIPTION,
    examples=batch_cli.EXAMPLES,
    add_arguments=batch_cli.add_arguments,
    run=batch_cli.run,
)
