"""``python -m bench``: LiveLedger's measurements, each beside its baseline in the same invocation."""
