"""Recommenders behind one protocol (``base.Recommender``).

The registry of their names is :mod:`segue.models.names`; each model lives in a module of its
own and is imported from there.
"""

from segue.models.base import Reason, Recommendations, Recommender

__all__ = ["Reason", "Recommendations", "Recommender"]
