"""Procedural synthetic corpora written to disk in the real corpora's layouts.

Each writer is deterministic from its seed, so the same readers that parse the
licensed corpora parse these, and the demo trains on a fresh machine.
"""
