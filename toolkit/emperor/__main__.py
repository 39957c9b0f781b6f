"""`python -m toolkit.emperor`: the Emperor's own process.

asyncio imports `ssl` when it can, which maps OpenSSL (about 3 MB) into a process that
never speaks TLS; marking it absent first keeps it out (asyncio then runs without TLS)."""

import sys

sys.modules.setdefault("ssl", None)  # type: ignore[arg-type]

from toolkit.emperor.main import main  # noqa: E402

raise SystemExit(main())
