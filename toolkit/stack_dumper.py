"""Where a stuck request was: run by uWSGI inside the app's own Python (`import = <this
file>`), it asks Python to print every thread's stack to the log on SIGURG, the signal
toolkit's templates give uWSGI's graceful harakiri (`harakiri-graceful-signal = 23`). When
a request outlives `harakiri`, the master sends it to the worker first, Python prints
where each thread is, and a second later the worker is killed; the Emperor reads the
stack and says where the app was stuck.

SIGURG: uWSGI's workers leave it alone (they take SIGHUP, SIGINT, SIGTERM, SIGUSR1 and
SIGUSR2, core/uwsgi.c), and its default is to do nothing. Registered in the master before
the fork (or in each worker with lazy-apps): a signal handler is inherited. Imports only
the standard library: it runs in the app's interpreter.
"""

import faulthandler
import signal

faulthandler.register(signal.SIGURG, all_threads=True, chain=False)
