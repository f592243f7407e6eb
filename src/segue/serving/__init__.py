"""The serving runtime: what a process answering requests holds and does.

The model holder and the immutable serving model of one version (``holder.py``), one live
request — fold-in, cold start, session, rules (``live.py``), the session re-ranker
(``session.py``), reasons in words (``titles.py``), event intake (``intake.py``) and the
stream worker that persists events and updates the online state (``worker.py``).
"""
