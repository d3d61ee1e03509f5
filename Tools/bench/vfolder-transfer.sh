#!/usr/bin/env bash
# Benchmark: vfolder upload (tus PATCH, 16 MiB chunks) and download (one GET) through a release
# storage proxy on loopback, against a plain local copy of the same file on the same
# filesystem; also the proxy's peak resident memory, which must stay flat whatever the size.
#   Tools/bench/vfolder-transfer.sh [size in MiB, default 1024]
set -euo pipefail
cd "$(dirname "$0")/../.."
mib=${1:-1024}
# shellcheck source=Tools/bench/common.sh
source Tools/bench/common.sh
work=$(mktemp -d /tmp/hangar-transfer-bench.XXXXXX)
port=$((36000 + RANDOM % 3000))
secret=bench-$RANDOM
mkdir -p "$work/volume"
cat >"$work/storage.toml" <<TOML
[storage-proxy]
listen = "127.0.0.1:$port"
secret = "$secret"
[volumes.v1]
backend = "vfs"
[volumes.v1.options]
root = "$work/volume"
[plugins]
search_paths = ["$plugins"]
TOML
"$bin/hangard" storage-proxy --config "$work/storage.toml" >"$work/proxy.log" 2>&1 &
pid=$!
trap 'kill $pid 2>/dev/null; wait $pid 2>/dev/null; rm -rf "$work"' EXIT
for _ in $(seq 100); do curl -sf "http://127.0.0.1:$port/" >/dev/null && break; sleep 0.1; done
head -c $((mib << 20)) /dev/urandom >"$work/source.bin"
sync
PROXY_PID=$pid python3 - "$port" "$secret" "$work" "$mib" <<'PY'
import hashlib, json, os, subprocess, sys, time, urllib.request
port, secret, work, mib = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
base = f"http://127.0.0.1:{port}"
size = mib << 20
def manager(path, body):
    req = urllib.request.Request(f"{base}/manager/{path}", data=json.dumps(body).encode(), method="POST",
                                 headers={"X-Hangar-Storage-Secret": secret, "Content-Type": "application/json"})
    with urllib.request.urlopen(req) as r:
        return json.loads(r.read() or b"{}")
def peak_rss():
    for line in open(f"/proc/{os.environ['PROXY_PID']}/status"):
        if line.startswith("VmHWM"):
            return int(line.split()[1]) / 1024
folder = "bench" + str(int(time.time()))
manager("folder/create", {"volume": "v1", "folder": folder})
t = time.monotonic(); subprocess.run(["cp", f"{work}/source.bin", f"{work}/copy.bin"], check=True); os.sync(); cp = time.monotonic() - t
ticket = manager("folder/file/upload", {"volume": "v1", "folder": folder, "path": "big.bin", "size": size})
url = ticket["url"] + "?token=" + ticket["token"]
t = time.monotonic()
offset = 0
with open(f"{work}/source.bin", "rb") as f:
    while offset < size:
        chunk = f.read(16 << 20)
        req = urllib.request.Request(url, data=chunk, method="PATCH", headers={"Upload-Offset": str(offset), "Tus-Resumable": "1.0.0",
                                                                                  "Content-Type": "application/offset+octet-stream"})
        with urllib.request.urlopen(req) as r:
            offset = int(r.headers["Upload-Offset"])
os.sync()
up = time.monotonic() - t
# The same upload as one PATCH sent by curl, to separate the server from the Python client.
ticket = manager("folder/file/upload", {"volume": "v1", "folder": folder, "path": "big2.bin", "size": size})
t = time.monotonic()
subprocess.run(["curl", "-sf", "-X", "PATCH", "-H", "Upload-Offset: 0", "-H", "Tus-Resumable: 1.0.0", "-H", "Content-Type: application/offset+octet-stream",
                "-T", f"{work}/source.bin", ticket["url"] + "?token=" + ticket["token"]], check=True)
os.sync()
up_curl = time.monotonic() - t
ticket = manager("folder/file/download", {"volume": "v1", "folder": folder, "path": "big.bin"})
t = time.monotonic()
subprocess.run(["curl", "-sf", "-o", f"{work}/downloaded.bin", ticket["url"] + "?token=" + ticket["token"]], check=True)
os.sync()
down = time.monotonic() - t
same = subprocess.run(["cmp", f"{work}/source.bin", f"{work}/downloaded.bin"]).returncode == 0
print(f"{mib} MiB; plain cp: {cp:.2f} s ({mib/cp:.0f} MiB/s)")
print(f"upload (tus PATCH, 16 MiB chunks): {up:.2f} s ({mib/up:.0f} MiB/s, {cp/up*100:.0f}% of cp)")
print(f"upload (one PATCH by curl): {up_curl:.2f} s ({mib/up_curl:.0f} MiB/s, {cp/up_curl*100:.0f}% of cp)")
print(f"download (one GET): {down:.2f} s ({mib/down:.0f} MiB/s, {cp/down*100:.0f}% of cp); byte-identical: {same}")
print(f"storage proxy peak RSS: {peak_rss():.1f} MiB")
PY
