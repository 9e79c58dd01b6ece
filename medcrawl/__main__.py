"""`python -m medcrawl` runs the medcrawl command."""

import sys

from medcrawl.cli import main

sys.exit(main())
