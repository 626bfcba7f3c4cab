"""The live loop's eyes: how published models do on real outcomes, and when to retrain.

* :mod:`.live`: realized coverage, MAE, q-error and abstention share per model version, from the
  prediction ledger's outcomes, judged against the validation gate's floor;
* :mod:`.drift`: input drift (PSI) of recent scans against a model's training window;
* :mod:`.promotion`: the rule that promotes a shadowed challenger on shared live outcomes;
* :mod:`.report`: :func:`~.report.monitor_models`, all of the above for every target, and the
  Prefect events it calls for (``technic-ml.model.degraded`` drives the retrain automation);
* :mod:`.figures`: plots and markdown for the ``model-monitor`` flow's artifacts.

Pure Python: the ``model-monitor`` flow (flows/model_monitor.py) reads the ledger and the
history, calls :func:`~.report.monitor_models` and emits the events.
"""
