"""`python -m mgca_lite ...` — see `mgca_lite.cli`."""
import sys

from mgca_lite.cli import main

sys.exit(main())
