# Sourced by scripts/demo.sh: starts a throwaway redis-server
# on a free loopback port, in a temp dir, stopped and removed on exit.
#
#   start_throwaway_redis TAG   sets $port, $pid and $dir, or prints the log tail and
#                               returns 1 after ten attempts
#   stop_throwaway_redis        kills it and removes its dir (also run on EXIT)

dir=""
pid=""
port=""

stop_throwaway_redis() {
  if [ -n "$pid" ]; then
    kill -9 "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  fi
  pid=""
  if [ -n "$dir" ]; then rm -rf "$dir"; fi
  dir=""
}
trap stop_throwaway_redis EXIT
trap 'exit 130' INT TERM

port_in_use() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

start_throwaway_redis() { # start_throwaway_redis TAG
  dir="$(mktemp -d -t "redis-semaphore-$1.XXXXXX")"
  local up=0
  for _ in 1 2 3 4 5 6 7 8 9 10; do
    port=$((20000 + RANDOM % 40000))
    port_in_use "$port" && continue
    redis-server --port "$port" --bind 127.0.0.1 --save "" --appendonly no \
      --dir "$dir" --daemonize no --protected-mode no >"$dir/server.log" 2>&1 &
    pid=$!
    for _ in $(seq 1 1000); do # up to ~10 s
      if [ "$(redis-cli -p "$port" ping 2>/dev/null || true)" = "PONG" ]; then
        up=1
        break
      fi
      kill -0 "$pid" 2>/dev/null || break
      sleep 0.01
    done
    [ "$up" -eq 1 ] && return 0
    kill -9 "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
    pid=""
  done
  echo "redis-server did not start; log tail:" >&2
  tail -n 30 "$dir/server.log" >&2 || true
  return 1
}
