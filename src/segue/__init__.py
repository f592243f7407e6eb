"""segue: a self-hostable music recommendation platform.

The package is layered; see ``docs/architecture.md``. Lower layers never import higher ones:
``data`` → ``store`` → ``dataset`` → ``models`` → ``eval`` → ``cli``.
"""

__version__ = "0.1.0"
