#!/usr/bin/env python3
"""Pack a checkpoint directory, model.py and the handler into a TorchServe model archive (.mar).

The command-line entry point of nertools.archive (`--help` lists the options); the code lives there.
"""

from nertools.archive import main

raise SystemExit(main())
