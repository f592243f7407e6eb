"""Sing along: the lead vocal made adjustable in a stereo mix (:mod:`segue.sing.vocals`),
audio files read and written (:mod:`segue.sing.audio`), and synthetic multi-stem songs with
their lyrics, the ground truth that measures the separation (:mod:`segue.sing.songs`).

Pure NumPy/SciPy signal processing: no model weights to download, nothing to install beyond
the core. The jobs layer ties it to the store (a track's audio file, the render cache).
"""
