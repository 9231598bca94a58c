#!/usr/bin/env python3
"""Write the directory KServe's TorchServe runtime downloads from storageUri (config/ and model-store/).

The command-line entry point of nertools.kserve (`--help` lists the options); the code lives there.
"""

from nertools.kserve import main

raise SystemExit(main())
