#!/usr/bin/env bash
# Start a throwaway redis-server on a free loopback port and run the demo
# example against it. Extra arguments are forwarded to the example.
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive
cd "$(dirname "${BASH_SOURCE[0]}")/.."

if ! command -v redis-server >/dev/null 2>&1 || ! command -v redis-cli >/dev/null 2>&1; then
  SUDO=""
  if [ "$(id -u)" -ne 0 ] && command -v sudo >/dev/null 2>&1; then SUDO="sudo"; fi
  echo "demo: installing redis-server" >&2
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq --no-install-recommends redis-server redis-tools >/dev/null
fi

# Build first so the server isn't waiting around during compilation.
cargo build --release --example demo

# shellcheck source=scripts/throwaway-redis.sh
source scripts/throwaway-redis.sh
start_throwaway_redis demo

url="redis://127.0.0.1:$port"
echo "demo: $(redis-server --version | awk '{ v = $3; sub(/^v=/, "", v); print $1, v }') at $url (pid $pid)" >&2
cargo run --release --example demo -- "$url" "$@"
