"""`python -m medcrawl` runs the medcrawl command."""

import sys

from medcrawl.oneoff.cli import main

sys.exit(main())
