"""Integration tier: a real .mar built by scripts/archive.py, served by a real TorchServe on free ports.

The shared TorchServe (`tiny_server`) lives in tests/conftest.py so that every integration folder uses one.
"""
