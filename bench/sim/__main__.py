"""`python -m bench.sim`: run the virtual bench (see bench/sim/launcher.py)."""

import sys

from bench.sim.launcher import main

sys.exit(main())
