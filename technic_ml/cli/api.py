"""``technic-ml api``: serve the prediction API with uvicorn."""

from __future__ import annotations

import gc
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
    reload_seconds: Annotated[
        float, typer.Option(min=0.5, help="How often to look for a newly published champion.")
    ] = 5.0,
    source: SOURCE = None,
    market_dir: MARKET_DIR = None,
) -> None:
    """Serve the prediction API (/scan/predict, /scan/suggest, ...) with uvicorn."""
    import uvicorn

    from technic_ml.api.app import create_app
    from technic_ml.api.service import PredictionService

    settings = load_settings(market_source=source, market_dir=market_dir)
    api_key = settings.api_key.get_secret_value() if settings.api_key else None
    if host not in LOOPBACK and api_key is None:
        raise TechnicError(
            f"--host: received {host!r}; binding beyond loopback needs an API key: set TECHNIC_API_KEY"
        )
    service = PredictionService(settings, reload_seconds=reload_seconds)
    health = service.health()
    err.print(
        f"prediction API on http://{host}:{port} (docs at /docs); models {health['models']};"
        f" {'ready' if health['ready'] else 'NOT ready'}"
        + ("".join(f"\n  degraded: {d}" for d in health["degraded"])),
        highlight=False,
    )
    app = create_app(service, api_key=api_key)
    # The loaded service (market panel, models, libraries: millions of objects) lives as long as the
    # process; frozen, the collector's full passes stop walking it. They were the 20-50 ms stalls
    # behind the p99 of computed predictions under load (bench/bench_api.py).
    gc.collect()
    gc.freeze()
    uvicorn.run(app, host=host, port=port, log_level="warning", access_log=False)
