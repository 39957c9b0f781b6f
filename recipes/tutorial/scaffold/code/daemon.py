"""Chapter 19: a stand-in for an external daemon (a queue worker, a cache server...)."""

import os
import time
from pathlib import Path

Path("logs").mkdir(exist_ok=True)
Path("logs/daemon.pid").write_text(f"{os.getpid()}\n")
print(f"daemon {os.getpid()} started", flush=True)
while True:
    time.sleep(1)
