"""The prediction API: champions, presets and the prediction ledger over HTTP.

* ``service``: what is served (champions swapped atomically on publish, conditions, presets);
* ``ledger``: predictions and reported outcomes, online MAE and coverage;
* ``schemas``: the request and response bodies;
* ``app``: the FastAPI application (validation, limits, errors, the optional API key).

``technic-ml api`` (``make api``) runs it with uvicorn on 127.0.0.1.
"""
