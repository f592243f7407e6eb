"""Serving pipeline: candidates from the models, then re-ranking with what happened just now.

Sits between the models (batch-trained) and the faces: it reads the online state (session
skips and likes, recent plays) so that the next answer reflects the last few seconds.
"""
