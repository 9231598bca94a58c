#!/usr/bin/env python3
"""Benchmark NER serving paths side by side on one model and one sentence mix, in one run.

The command-line entry point of nertools.bench (`--help` lists the options); the code lives there.
"""

from nertools.bench import main

raise SystemExit(main())
