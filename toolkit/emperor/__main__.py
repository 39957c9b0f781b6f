"""`python -m toolkit.emperor`: the Emperor's own process."""

from toolkit.emperor.main import main

raise SystemExit(main())
