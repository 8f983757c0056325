"""`python -m animevae` (and `torchrun -m animevae train ...`) run the CLI."""

from .cli import main

raise SystemExit(main())
