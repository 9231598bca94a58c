"""Data for the offline demo NER model: a synthetic training corpus, a hand-written evaluation set and the
entity-level metric used to score a checkpoint on it (see scripts/build_demo_model.py)."""
