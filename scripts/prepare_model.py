#!/usr/bin/env python3
"""Resolve --model PATH_OR_HUB_ID to a local checkpoint directory the server can archive, and print its path.

The command-line entry point of nertools.prepare_model (`--help` lists the options); the code lives there.
"""

from nertools.prepare_model import main

raise SystemExit(main())
