"""Schedules and serving (``prefect.serve``) for the flows, kept in one place.

Populated by the pipeline issue.
"""
