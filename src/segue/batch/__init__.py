"""The daily batch run: the Metaflow flow (``flow.py``) and the steps it calls.

Daily steps — ingest, snapshot, train candidates, choose (``daily.py``); the gate, publish,
promote and load production (``lifecycle.py``); top-k lists for every listener
(``lists.py``); mixes and campaign inputs as Parquet, loaded into the store and the online
state (``publish.py``); the local Metaflow environment and past runs (``runs.py``).
"""
