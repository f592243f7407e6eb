"""Next best action: which song, show, video, book or app feature to suggest to each user, on
which channel, and whether to send anything at all.

``actions`` (the catalogue), ``features`` (what the click model sees), ``cf`` (CF scores in
the store's vocabularies), ``clickmodel`` (calibrated logistic regression), ``training``
(logged impressions to a fitted, evaluated model), ``metrics`` (offline metrics and the
report), ``candidates`` (collaborative filtering plus feature education), ``policy``
(thresholds, caps, quiet hours, consent, channel), ``render`` (Jinja2 messages),
``delivery`` (SMTP, push gateway, in-app; the outbox protocol is ``segue.store.outbox``).
"""
