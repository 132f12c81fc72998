"""``python -m catalyst_nb`` runs the command-line interface."""
from __future__ import annotations

import sys

from catalyst_nb.cli import main

sys.exit(main())
