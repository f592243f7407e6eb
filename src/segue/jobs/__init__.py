"""Jobs: the units of work that every face runs (CLI today, flows and the API later).

A job wires library layers together (store, dataset, models, eval) and reports progress
through a callback, so that the CLI, a Metaflow step and a test all run the same code.
"""
