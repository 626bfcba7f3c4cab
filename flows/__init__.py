"""Prefect flows, one per file; each flow body reads like a table of contents of its tasks.

Populated by the pipeline issue; until then ``make run`` calls ``technic_ml.jobs`` directly.
"""
