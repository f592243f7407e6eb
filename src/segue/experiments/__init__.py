"""Online experiments: who sees which variant (``assignment``) and what the difference is
worth (``stats``). Pure numpy/scipy, below every layer that serves or stores: serving asks the
assigner per request, the analysis reads per-listener tables that any layer can build."""
