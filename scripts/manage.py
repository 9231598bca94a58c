#!/usr/bin/env python3
"""Operate ner_model on a running TorchServe: versions, workers, readiness, canary comparisons.

The command-line entry point of nertools.manage (`--help` lists the options); the code lives there.
"""

from nertools.manage import main

raise SystemExit(main())
