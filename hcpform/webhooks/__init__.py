"""HCP's webhooks: receive (views), verify and store (signing, secret, store), apply (apply,
figures), reconcile without webhooks (reconcile), and their queue jobs (tasks).

Each module sits in its own layer (tests/test_layers.py); this package file imports nothing.
"""
