"""nsplayer: speech audio in, time-synced Live Link Face packets out."""

__version__ = "0.1.0"
