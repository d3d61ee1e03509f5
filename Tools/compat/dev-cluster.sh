# Sourced by the compatibility checks: starts a throwaway `hangard dev` on random loopback
# ports (engine socket from $1 or $HANGAR_TEST_ENGINE_SOCKET; database: $HANGAR_COMPAT_DATABASE,
# a postgresql:// URL, else SQLite in its data directory), waits for it, loads its client
# environment (BACKEND_*), and stops it and removes its data on exit. Sets $work and $mport.
bin=$(swift build --show-bin-path)
socket=${1:-${HANGAR_TEST_ENGINE_SOCKET:-}}
work=$(mktemp -d /tmp/hangar-compat.XXXXXX)
# Ports the kernel reports free: a guessed port in the ephemeral range can be taken by any
# client connection of the test run, and the dev cluster would then fail to listen.
freeport() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
mport=$(freeport); aport=$(freeport); sport=$(freeport); wport=$(freeport)
HOME="$work/home" "$bin/hangard" dev --data-dir "$work/data" --listen "127.0.0.1:$mport" --agent-listen "127.0.0.1:$aport" \
    --storage-listen "127.0.0.1:$sport" --web-listen "127.0.0.1:$wport" ${socket:+--engine-socket "$socket"} ${HANGAR_COMPAT_DATABASE:+--database "$HANGAR_COMPAT_DATABASE"} \
    --no-image >"$work/dev.out" 2>"$work/dev.err" &
dev=$!
# If the dev cluster died under the checks, say so with its log before it is removed.
# A crash report starts with the reason and the crashing thread: the head of the log shows it.
trap 'if ! kill -0 $dev 2>/dev/null; then echo "hangard dev exited before the checks ended; its log:" >&2; grep -m1 -B5 -A60 -E "Fatal error|Crash|crashed" "$work/dev.err" >&2 || tail -40 "$work/dev.err" >&2; tail -40 "$work/dev.out" >&2; fi
      kill -INT $dev 2>/dev/null; wait $dev 2>/dev/null; rm -rf "$work"' EXIT
for _ in $(seq 150); do [ -f "$work/data/client.env" ] && curl -sf "http://127.0.0.1:$mport/" >/dev/null && break; sleep 0.2; done
[ -f "$work/data/client.env" ] || { echo "hangard dev did not start:" >&2; cat "$work/dev.err" >&2; exit 1; }
# shellcheck disable=SC1091
source "$work/data/client.env"
