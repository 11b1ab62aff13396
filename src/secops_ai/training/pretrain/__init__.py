"""Pretraining small GPTs from scratch, nanoGPT-style, on pseudonymised security logs.

``logs`` (synthetic logs) → ``corpus`` (``data/nanogpt/<name>-v<N>/``) → ``train`` (the loop, ``model`` +
``blocks``) → ``export`` (``models/nanogpt/<run-id>/``, a ``GPT2LMHeadModel`` folder) → ``anomaly`` (rank
log lines by per-token loss). ``config`` holds the run configuration read from ``configs/pretrain/``.
"""
