"""Schedules and serving (``prefect.serve``) for the flows, kept in one place.

``deployments.serve`` builds every deployment with its schedule (America/New_York) and serves
them from one process (``make serve``); ``prefect.yaml`` describes the same deployments for a work
pool with workers. ``deployments.cli`` is the ``technic-ml`` console script: the library's
commands plus ``run`` (the main job), ``serve`` and ``trigger``.
"""
