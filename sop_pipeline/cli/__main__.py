"""``python -m sop_pipeline.cli`` is the ``sop`` command."""

import sys

from sop_pipeline.cli.commands import main

sys.exit(main())
