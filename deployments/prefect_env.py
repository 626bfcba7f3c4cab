"""Prefect's environment for the entry points that run flows, and a fail-fast start of its ephemeral server.

Prefect reads its settings once, when it is first imported, so ``set_defaults()`` runs before
that in every entry point that may run flows: ``technic-ml run``, ``serve`` and ``trigger``
(deployments/cli.py) and ``python -m deployments.serve``. Each value is a default
(``os.environ.setdefault``): whatever the user set wins.

Without ``PREFECT_API_URL``, Prefect starts an ephemeral server (a uvicorn subprocess) and waits
for its health endpoint at most ``PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS``. Prefect's
default, 20, is below a cold start on 2 cores: a new ``PREFECT_HOME`` first creates and migrates
its SQLite database. ``bench/bench_prefect_cold_start.py`` measured it at 15.6-20.5 s idle,
16.7-28.3 s with one busy-loop process and 28.1-53.0 s with two; with two the default timed out 3
times out of 3 (``make run`` on a fresh machine was reported failing about half the time). Hence
300 s, over five times the slowest start measured.

A generous timeout must not turn a real failure into a long hang, and Prefect's wait loop
(``prefect.server.api.server.SubprocessASGIServer.start``) does not notice a dead server: it only
restarts one that exited with code 3 (which it takes for "port taken") and otherwise polls until
the timeout. A server that fails at startup (a database it cannot open, say) also exits with 3,
uvicorn's startup-failure code, so Prefect restarts it over and over for the whole timeout.
``start_ephemeral_server()`` starts the same server up front (Prefect's own object: the flows then
find it running) and watches the process: any other exit code fails at once, a third exit 3 too,
with one line saying so; the server's own error is already printed above it (its stderr is ours).
"""

from __future__ import annotations

import os
import threading

from technic_ml.errors import TechnicError

#: Seconds Prefect waits for its ephemeral server to answer (Prefect's default: 20). See above.
EPHEMERAL_STARTUP_TIMEOUT_SECONDS = 300

DEFAULTS = {
    "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": str(EPHEMERAL_STARTUP_TIMEOUT_SECONDS),
    # Offline by default: the ephemeral server would otherwise try to send telemetry at start.
    "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
}

#: Server processes allowed to exit with code 3 before giving up. One may lose a race for its
#: random port; three in a row is a server that cannot start.
MAX_STARTS = 3


def set_defaults() -> None:
    """Set Prefect's environment defaults (a value already in the environment is kept)."""
    for key, value in DEFAULTS.items():
        os.environ.setdefault(key, value)


def uses_ephemeral_server() -> bool:
    """Whether flows run now would start Prefect's ephemeral server (no API URL configured)."""
    from prefect.settings import get_current_settings

    settings = get_current_settings()
    return not settings.api.url and settings.server.ephemeral.enabled


def _home() -> str:
    from prefect.settings import get_current_settings

    return str(get_current_settings().home)


def _give_up(server, done: threading.Event) -> None:
    """Stop the server and Prefect's wait loop for good.

    Stopping the process alone races with the loop: between its ``poll() == 3`` and starting the
    next process it may sleep (looking for a free port), and the new process would then be polled
    until the timeout. So the loop's next start raises first (Prefect's loop then ends: it resets
    ``running`` and re-raises), and whatever process is current is stopped.
    """

    def refuse():
        raise RuntimeError("technic-ml gave up on this ephemeral server")

    server._run_uvicorn_command = refuse  # this instance only; stop() forgets it (new one next time)
    for _ in range(2):  # twice: a process started just before the refusal is stopped too
        server.stop()
        if done.wait(5):
            break
    if server.server_process is not None:
        server.stop()


def start_ephemeral_server(poll_seconds: float = 0.1) -> bool:
    """Start Prefect's ephemeral server now if flows would use one; raise at once if it dies starting.

    Returns False when a server is configured (``PREFECT_API_URL``), True when the ephemeral one
    is up. Raises TechnicError, in one line, when its process exits while starting (see the module
    docstring) or Prefect's timeout passes.
    """
    if not uses_ephemeral_server():
        return False
    from prefect.server.api.server import SubprocessASGIServer

    server = SubprocessASGIServer()  # one per process: the flows' clients get this same object
    if server.running:
        return True
    failure: list[BaseException] = []
    done = threading.Event()

    def start() -> None:
        try:
            server.start()
        except BaseException as exc:
            failure.append(exc)
        finally:
            done.set()

    threading.Thread(target=start, name="prefect-ephemeral-start", daemon=True).start()
    seen: list = []  # every server process Prefect started (a new one after each exit with code 3)
    while not done.wait(poll_seconds):
        process = server.server_process
        if process is None:
            continue
        if not any(p is process for p in seen):
            seen.append(process)
        code = process.poll()
        if code is None or (code == 3 and len(seen) < MAX_STARTS):
            continue
        _give_up(server, done)
        what = "uvicorn's code for a failed startup" if code == 3 else "the server crashed"
        raise TechnicError(
            f"Prefect's ephemeral server: exited with code {code} ({what}) while starting, attempt"
            f" {len(seen)} of {MAX_STARTS}; its own error is printed above (PREFECT_HOME {_home()});"
            " to use a running server instead, set PREFECT_API_URL (make server)"
        )
    if failure:
        exc = failure[0]
        if isinstance(exc, RuntimeError) and "Timed out" in str(exc):
            from prefect.settings import get_current_settings

            timeout = get_current_settings().server.ephemeral.startup_timeout_seconds
            raise TechnicError(
                f"Prefect's ephemeral server: no answer within {timeout} s"
                f" (PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS, PREFECT_HOME {_home()}); expected it"
                " to start: raise the timeout on a very slow machine, or set PREFECT_API_URL (make server)"
            ) from exc
        raise exc
    return True
