"""Metaflow flows: the daily batch run (``daily.py``), started by ``segue flow run`` or a
scheduler. Steps call ``segue.jobs``; the flows add orchestration and run records only."""
