"""``python -m bake.cli``: the ``bake`` console command without PATH set-up."""

import sys

from bake.cli.main import main

sys.exit(main())
