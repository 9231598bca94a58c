#!/usr/bin/env python3
"""Is a model able to serve? Exit 0 once it has a READY worker, 1 on timeout.

The command-line entry point of nertools.ready (`--help` lists the options); the code lives there.
"""

from nertools.ready import main

raise SystemExit(main())
