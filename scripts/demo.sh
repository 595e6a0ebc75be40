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

dir="$(mktemp -d -t redis-semaphore-demo.XXXXXX)"
pid=""
cleanup() {
  if [ -n "$pid" ]; then
    kill -9 "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  fi
  rm -rf "$dir"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

port_in_use() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

started=0
for _ in 1 2 3 4 5 6 7 8 9 10; do
  port=$(( 20000 + RANDOM % 40000 ))
  port_in_use "$port" && continue
  redis-server --port "$port" --bind 127.0.0.1 --save "" --appendonly no \
    --dir "$dir" --daemonize no --protected-mode no >"$dir/server.log" 2>&1 &
  pid=$!
  for _ in $(seq 1 1000); do # up to ~10 s
    if [ "$(redis-cli -p "$port" ping 2>/dev/null || true)" = "PONG" ]; then
      started=1
      break
    fi
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.01
  done
  [ "$started" -eq 1 ] && break
  kill -9 "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
  pid=""
done
if [ "$started" -ne 1 ]; then
  echo "demo: redis-server did not start; log tail:" >&2
  tail -n 30 "$dir/server.log" >&2 || true
  exit 1
fi

url="redis://127.0.0.1:$port"
echo "demo: $(redis-server --version | awk '{ v = $3; sub(/^v=/, "", v); print $1, v }') at $url (pid $pid)" >&2
cargo run --release --example demo -- "$url" "$@"
