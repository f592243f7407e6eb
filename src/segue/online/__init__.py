"""Online state and the event bus: what must react within one request.

In-process implementations are the default (no servers); Redis implementations (hashes,
sorted sets, Streams with consumer groups) take over when ``SEGUE_REDIS_URL`` is set. Both
honour the same interfaces and run the same tests.
"""
