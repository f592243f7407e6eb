"""What a listener sees: daily mixes, Discovery Station and radio, and the year's Wrapped.

Each module works on arrays aligned with a trained model's item map (the catalog of
:mod:`segue.dataset.catalog`) or on one user's event log; the jobs layer
(:mod:`segue.jobs.products`) reads the store, picks the model and maps ids at the edges.
"""
