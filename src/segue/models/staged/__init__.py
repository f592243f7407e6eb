"""The staged recommender: retrieval → learned ranking → finer re-ranking, as one model.

``retrieval.py`` (candidate generators and their merged candidate sets), ``ann.py`` (a faiss
index over embedding generators), ``features.py`` (listener, item and pair features),
``ranker.py`` (LightGBM LambdaRank), ``rerank.py`` (calibration to the listener's genre mix),
``pipeline.py`` (:class:`StagedRecommender`, registered as ``pipeline``).
"""
