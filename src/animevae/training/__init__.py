"""Training: the loop (``loop.py``, one place to read top to bottom), its state, objectives and per-epoch passes."""
