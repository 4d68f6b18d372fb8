"""`python -m dpsim` is the same as the `dpsim` console script."""

from dpsim.cli import main

raise SystemExit(main())
