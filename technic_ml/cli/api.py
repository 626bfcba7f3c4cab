"""``technic-ml api``: serve the prediction API with uvicorn."""

from __future__ import annotations

import os
from typing import Annotated

import typer

from technic_ml.cli.common import MARKET_DIR, SOURCE, app, err, handled, load_settings
from technic_ml.errors import TechnicError

LOOPBACK = ("127.0.0.1", "localhost", "::1")


@app.command()
@handled
def api(
    host: Annotated[
        str, typer.Option(help="Address to bind (another than loopback needs TECHNIC_API_KEY).")
    ] = ("127.0.0.1"),
    port: Annotated[int, typer.Option(min=1, max=65535, help="Port.")] = 8000,
    workers: Annotated[
        int, typer.Option(min=1, max=64, help="Server processes (one per core); they share the ledger.")
    ] = 1,
    reload_seconds: Annotated[
        float | None,
        typer.Option(
            min=0.5,
            help="How often to look for a newly published champion (default: TECHNIC_API_RELOAD_SECONDS, 5).",
        ),
    ] = None,
    source: SOURCE = None,
    market_dir: MARKET_DIR = None,
) -> None:
    """Serve the prediction API (/scan/predict, /scan/suggest, ...) with uvicorn."""
    import uvicorn

    from technic_ml.api.app import app_from_settings

    settings = load_settings(market_source=source, market_dir=market_dir, api_reload_seconds=reload_seconds)
    if host not in LOOPBACK and settings.api_key is None:
        raise TechnicError(
            f"--host: received {host!r}; binding beyond loopback needs an API key: set TECHNIC_API_KEY"
        )
    run = {"host": host, "port": port, "log_level": "warning", "access_log": False}
    if workers > 1:
        # Each worker builds its own service from the environment (uvicorn spawns them): the
        # options given here travel as the settings they override.
        os.environ.update(_as_environment(settings))
        err.print(
            f"prediction API on http://{host}:{port} (docs at /docs): {workers} workers", highlight=False
        )
        uvicorn.run("technic_ml.api.app:app_from_settings", factory=True, workers=workers, **run)
        return
    served = app_from_settings(settings)
    health = served.state.service.health()
    err.print(
        f"prediction API on http://{host}:{port} (docs at /docs); models {health['models']};"
        f" {'ready' if health['ready'] else 'NOT ready'}"
        + ("".join(f"\n  degraded: {d}" for d in health["degraded"])),
        highlight=False,
    )
    uvicorn.run(served, **run)


def _as_environment(settings) -> dict[str, str]:
    """The settings the command's options may override, as the TECHNIC_* variables they read."""
    fields = ("data_root", "market_source", "market_dir", "api_reload_seconds")
    return {f"TECHNIC_{f.upper()}": str(v) for f in fields if (v := getattr(settings, f)) is not None}
