"""``python -m aiecs_llm``: the same as the ``aiecs-llm`` command."""

import sys

from aiecs_llm.cli.main import main

sys.exit(main())
