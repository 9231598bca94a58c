#!/usr/bin/env bash
# Build the model server and gateway container images (the logic is in nertools/images.py).
set -euo pipefail

usage() {
  cat <<'USAGE'
Usage: scripts/build_images.sh [--engine podman|docker] [--base auto|registry|debian] [--only server|gateway]

Builds two images into the container engine's default image store:
  localhost/ner-model-server:<version> and :latest   TorchServe + the handler + the demo model's archive
  localhost/ner-gateway:<version> and :latest        the real-time gateway alone
(<version> from pyproject.toml). Builds the demo model and model_store/ner_model.mar first when missing.

  --engine  podman or docker; default: the first whose `info` works (a docker client without a daemon does not)
  --base    auto (default): debian:bookworm-slim from its registry when one answers, else the same release built
            from Debian's package repository with mmdebstrap, imported as localhost/debian-base:bookworm;
            registry / debian: only that path
  --only    build one of the two images

Python packages come from a wheelhouse built on this host with its own pip configuration (.cache/images/), so a
mirror, a local wheel directory or an intercepting proxy that pip here knows about works in the build too.
With podman it writes .cache/containers/containers.conf (runc, cgroupfs, rlimits podman can grant) and uses it
unless CONTAINERS_CONF is set; `podman run` needs the same on hosts like these:
  export CONTAINERS_CONF=$PWD/.cache/containers/containers.conf
A second build reuses the cached layers. Needs podman (scripts/setup_test_deps.sh installs podman, buildah, runc,
mmdebstrap) or a running docker, and .venv/ (scripts/setup_env.sh). docs/DEPLOY.md describes the images.
USAGE
}
[[ "${1:-}" == "-h" || "${1:-}" == "--help" ]] && { usage; exit 0; }

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
"$ROOT/scripts/setup_env.sh"
exec "$ROOT/.venv/bin/python" -m nertools.images "$@"
