# Sourced by the test scripts: the server binaries, their names, and a pass that records
# its failure instead of stopping the run (the summary at the end says which failed).
redis_bin="$(command -v redis-server)"
valkey_bin="$(scripts/valkey-bin.sh)"
failed=()

# "Redis server v=7.0.15 sha=..." -> "Redis 7.0.15"
server_name() {
  "$1" --version | awk '{ v = $3; sub(/^v=/, "", v); print $1, v }'
}

# step <label> <command...>: runs the command, records the label if it fails.
step() {
  local label="$1"
  shift
  echo
  echo "== $label =="
  if ! "$@"; then
    failed+=("$label")
  fi
}

# summary: the failed steps, and exit 1 if there were any.
summary() {
  echo
  if [ "${#failed[@]}" -ne 0 ]; then
    printf 'FAILED: %s\n' "${failed[@]}"
    exit 1
  fi
}
