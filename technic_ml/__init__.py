"""technic-ml: scan history, market conditions and calibrated predictors for the Technic scanner.

The library is pure Python and never imports Prefect; ``tasks/``, ``flows/`` and ``deployments/``
wrap it. Modules, from the bottom up:

* ``errors``: the exceptions every layer raises (each names the value and what was expected).
* ``nyse``: New York time and the NYSE calendar (point-in-time rules live here).
* ``contracts``: ScanConfig, ScanRecord, MarketConditions.
* ``fsio`` / ``objectstore``: atomic writes and locks on disk, and their object-storage twins.
* ``settings``: TECHNIC_* settings, the data root.
* ``market_data``: one interface over the embedded sample, a parquet directory and yfinance.
* ``market_conditions`` / ``snapshots``: conditions as of a moment, and their persisted history.
* ``history``: the scan history store.
* ``panel`` / ``scanner`` / ``timing``: the reference scanner and how its scans are timed;
  ``backfill``: point-in-time scans over history.
* ``predictors``: features, estimators, validation, the registry, serving; ``optimizer``: presets.
* ``stores``: opens every store where the settings say it lives (local disk or a bucket).
* ``api``: the prediction API and its ledger; ``client``: its typed Python client (httpx);
  ``monitor``: live performance, drift, promotion.
* ``replay``: replaying real days (the harness that drives the flows is deployments/replay.py).
* ``jobs``: the steps of the main job and the flows over the configured stores (module for module
  with ``tasks/``); ``cli``: the ``technic-ml`` command.
"""

__version__ = "0.1.0"
