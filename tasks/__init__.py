"""Prefect tasks: thin ``@task`` wrappers, each over one ``technic_ml`` call.

The Prefect pipeline arrives with a later issue; the library functions these tasks will wrap
(market snapshot, scan-history import) already exist in ``technic_ml``.
"""
