#!/usr/bin/env bash
# Install the system packages the test suite needs beyond .venv/ (idempotent: present commands are skipped).
set -euo pipefail

# One "command:debian-package" pair per line; add new test dependencies here.
REQUIRED=(
  "prometheus:prometheus"  # tests/integration/test_prometheus.py scrapes a real TorchServe with it
  "chromium:chromium"  # tests/gateway/integration/test_demo_page.py drives the gateway's demo page (Playwright)
  # tests/containers/ builds and runs the images; scripts/build_images.sh uses the same tools. runc, not the
  # default crun: crun fails on these cgroup-v1-hybrid hosts. mmdebstrap builds the Debian base image when no
  # image registry is reachable.
  "podman:podman"
  "buildah:buildah"
  "runc:runc"
  "mmdebstrap:mmdebstrap"
  # tests/deploy/test_kube_play.py: podman kube play builds its pause image around catatonit, and pods find each
  # other by name through aardvark-dns (not on PATH: checked by its path). --no-install-recommends skips both.
  "catatonit:catatonit"
  "/usr/lib/podman/aardvark-dns:aardvark-dns"
)

usage() {
  cat <<'USAGE'
Usage: scripts/setup_test_deps.sh [--help]

Installs the Debian packages the test suite needs when their command is missing from PATH:
  prometheus   (package prometheus) for tests/integration/test_prometheus.py
  chromium     (package chromium) for tests/gateway/integration/test_demo_page.py
  podman, buildah, runc, mmdebstrap, catatonit, aardvark-dns  (packages of the same names) for tests/containers/,
               tests/deploy/ (podman kube play) and
               scripts/build_images.sh (runc: crun fails on cgroup v1 hybrid hosts; mmdebstrap: the base image
               from Debian's repository when no image registry is reachable)
Python packages come from scripts/setup_env.sh, Java from your distribution (see README.md).

Runs apt-get update only when the package lists are missing or stale. Needs root: uses sudo when run as
another user. Package services are not started (this is a test tool, not a server): the test starts its own
Prometheus on a free port, and nothing is left listening on :9090.
Re-running is cheap: it only checks `command -v` for each command.
USAGE
}
case "${1:-}" in
  -h|--help) usage; exit 0 ;;
  "") ;;
  *) echo "error: unknown argument $1 (see --help)" >&2; exit 2 ;;
esac

missing=()
for entry in "${REQUIRED[@]}"; do
  command -v "${entry%%:*}" >/dev/null 2>&1 || missing+=("${entry#*:}")
done
if [[ ${#missing[@]} -eq 0 ]]; then
  echo "test dependencies present: ${REQUIRED[*]%%:*}"
  exit 0
fi

if ! command -v apt-get >/dev/null 2>&1; then
  echo "error: apt-get not found; install these packages with your system's package manager: ${missing[*]}" >&2
  exit 1
fi
SUDO=()
if [[ "$(id -u)" -ne 0 ]]; then
  if command -v sudo >/dev/null 2>&1; then
    SUDO=(sudo)
  else
    echo "error: installing ${missing[*]} needs root and sudo is not installed; run this script as root." >&2
    exit 1
  fi
fi

# Debian's prometheus package enables and starts a service on :9090 from its postinst. Without systemd,
# invoke-rc.d would run the init script; a policy-rc.d that answers 101 ("action forbidden") stops that.
# An existing policy (Docker images ship one) is left alone; ours is removed on exit.
POLICY=/usr/sbin/policy-rc.d
if [[ ! -e "$POLICY" ]]; then
  printf '#!/bin/sh\n# temporary, from scripts/setup_test_deps.sh: do not start services\nexit 101\n' \
    | "${SUDO[@]}" tee "$POLICY" >/dev/null
  "${SUDO[@]}" chmod 755 "$POLICY"
  trap '"${SUDO[@]}" rm -f "$POLICY"' EXIT
fi

apt_install() {
  "${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@"
}
has_candidate() {
  local package policy
  for package in "$@"; do
    # Captured first: grep -q closing the pipe early would make apt-cache fail under pipefail.
    policy="$(apt-cache policy "$package" 2>/dev/null || true)"
    [[ "$policy" =~ Candidate:\ [^\(] ]] || return 1
  done
}

echo "installing: ${missing[*]}"
if ! has_candidate "${missing[@]}"; then
  echo "package lists are missing or do not know ${missing[*]}; running apt-get update"
  "${SUDO[@]}" apt-get update -qq
fi
if ! apt_install "${missing[@]}"; then
  # Usually stale lists pointing at versions the mirror no longer has: refresh once and retry.
  echo "install failed; refreshing package lists and retrying once"
  "${SUDO[@]}" apt-get update -qq
  apt_install "${missing[@]}"
fi

status=0
for entry in "${REQUIRED[@]}"; do
  command="${entry%%:*}" package="${entry#*:}"
  state="$(dpkg-query -W -f='${Status}' "$package" 2>/dev/null || true)"
  if ! command -v "$command" >/dev/null 2>&1 || [[ "$state" != "install ok installed" ]]; then
    echo "error: $package did not install cleanly (dpkg status: ${state:-none}; command $command missing?)" >&2
    status=1
  fi
done
[[ $status -eq 0 ]] && echo "test dependencies installed: ${REQUIRED[*]%%:*}"
exit $status
