"""The steps of the main job and of the Prefect flows, as plain library functions.

Every flow in ``flows/`` is a table of contents over these steps (each wrapped by one task in
``tasks/``, module for module: ``tasks/market.py`` calls :mod:`.market`, and so on); nothing here
knows about Prefect, so each step is tested on its own. The steps are the library's composition
layer: they open the configured stores (:mod:`technic_ml.stores`) and market data and hand them to
the packages that do the work, which never open stores themselves.

* :mod:`.market`: market conditions snapshotted at a moment and persisted (``market-snapshot``,
  the main job);
* :mod:`.predictors`: the training data, the scan history joined with point-in-time features
  (``train-predictors``; the predictors' own steps are in :mod:`technic_ml.predictors.training`);
* :mod:`.presets`: the champions loaded, every goal's suggestion, the hot sectors and the saved
  presets (``daily-presets``, around :func:`technic_ml.optimizer.daily_presets`);
* :mod:`.reports`: the main job's scan-history statistics and run summary.

The main job's backfill window and summary are the backfill's
(:func:`technic_ml.backfill.main_backfill_window`, :meth:`technic_ml.backfill.BackfillSummary.to_dict`).
"""
