"""Driver of Tools/bench/vfolder-transfer.sh: times each transfer beside cp and nginx.

Arguments: proxy port, proxy secret, nginx port, work dir, MiB, small files, rounds, peak MiB.
"""
import hashlib
import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import time
import urllib.request

port, secret, nginx_port, work = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4]
mib, files, rounds, peak_mib = int(sys.argv[5]), int(sys.argv[6]), int(sys.argv[7]), int(sys.argv[8])
base = f"http://127.0.0.1:{port}"
static = f"http://127.0.0.1:{nginx_port}"


def manager(path, body):
    req = urllib.request.Request(f"{base}/manager/{path}", data=json.dumps(body).encode(), method="POST",
                                 headers={"X-Hangar-Storage-Secret": secret, "Content-Type": "application/json"})
    with urllib.request.urlopen(req) as r:
        return json.loads(r.read() or b"{}")


def peak_rss():
    for line in open(f"/proc/{os.environ['PROXY_PID']}/status"):
        if line.startswith("VmHWM"):
            return int(line.split()[1]) / 1024


peaks = {}


def reset_peak():
    # Writing 5 to clear_refs resets VmHWM, so each transfer's own peak can be read.
    with open(f"/proc/{os.environ['PROXY_PID']}/clear_refs", "w") as f:
        f.write("5")


def timed(action, name=None):
    """Seconds for action() and the sync that makes its writes durable; with a name, the
    proxy's peak RSS during it is kept too."""
    os.sync()
    if name:
        reset_peak()
    t = time.monotonic()
    action()
    os.sync()
    if name:
        peaks[name] = max(peaks.get(name, 0), peak_rss())
    return time.monotonic() - t


def sh(command):
    done = subprocess.run(command, shell=True, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    if done.returncode != 0:
        sys.exit(f"failed ({done.returncode}): {command}\n{done.stdout.decode(errors='replace')[-2000:]}")


def ticket(path, kind, **extra):
    t = manager(f"folder/file/{kind}", {"volume": "v1", "folder": folder, "path": path, **extra})
    return t["url"] + "?token=" + t["token"]


def tus_chunks(url, source, size):
    offset = 0
    with open(source, "rb") as f:
        while offset < size:
            chunk = f.read(16 << 20)
            req = urllib.request.Request(url, data=chunk, method="PATCH", headers={
                "Upload-Offset": str(offset), "Tus-Resumable": "1.0.0", "Content-Type": "application/offset+octet-stream"})
            with urllib.request.urlopen(req) as r:
                offset = int(r.headers["Upload-Offset"])


def tree_digest(root):
    h = hashlib.sha256()
    for d, subdirs, names in sorted(os.walk(root)):
        subdirs.sort()
        for n in sorted(names):
            p = os.path.join(d, n)
            h.update(os.path.relpath(p, root).encode())
            with open(p, "rb") as f:
                h.update(f.read())
    return h.hexdigest()


folder = "bench" + str(int(time.time()))
home = manager("folder/create", {"volume": "v1", "folder": folder})["path"]
size = mib << 20
source = f"{work}/source.bin"
sh(f"head -c {size} /dev/urandom > {source}")
# Small files: sizes spread over 1-16 KiB in 100 directories, as a dataset of samples would be.
small = f"{work}/small"
rng = random.Random(7)
for i in range(files):
    d = f"{small}/d{i % 100:02d}"
    os.makedirs(d, exist_ok=True)
    with open(f"{d}/f{i:05d}.bin", "wb") as f:
        f.write(rng.randbytes(rng.randint(1024, 16384)))
small_bytes = sum(os.path.getsize(os.path.join(d, n)) for d, _, ns in os.walk(small) for n in ns)
tar_size = int(subprocess.run(f"tar -C {small} -cf - . | wc -c", shell=True, check=True, capture_output=True, text=True).stdout)
small_digest = tree_digest(small)
os.sync()

rows = {}


def record(name, seconds):
    rows.setdefault(name, []).append(seconds)


for r in range(rounds):
    # One file, up: cp, nginx PUT, the proxy (one PATCH; 16 MiB tus chunks).
    record("big cp", timed(lambda: sh(f"cp {source} {work}/copy.bin")))
    record("big up nginx", timed(lambda: sh(f"curl -sS --fail-with-body -T {source} {static}/big{r}.bin")))
    url = ticket(f"big{r}.bin", "upload", size=size)
    record("big up proxy", timed(lambda: sh(f"curl -sS --fail-with-body -X PATCH -H 'Upload-Offset: 0' -H 'Tus-Resumable: 1.0.0' "
                                            f"-H 'Content-Type: application/offset+octet-stream' -T {source} '{url}'"), "big up proxy"))
    url = ticket(f"chunked{r}.bin", "upload", size=size)
    record("big up proxy tus16", timed(lambda: tus_chunks(url, source, size), "big up proxy tus16"))
    # Down: cp out of the volume, nginx GET, the proxy GET.
    record("big down cp", timed(lambda: sh(f"cp {home}/big{r}.bin {work}/copy-down.bin")))
    record("big down nginx", timed(lambda: sh(f"curl -sS --fail-with-body -o {work}/nginx-down.bin {static}/big{r}.bin")))
    url = ticket(f"big{r}.bin", "download")
    record("big down proxy", timed(lambda: sh(f"curl -sS --fail-with-body -o {work}/proxy-down.bin '{url}'"), "big down proxy"))
    if r == 0:
        assert subprocess.run(["cmp", source, f"{work}/proxy-down.bin"]).returncode == 0, "the download differs"
        assert subprocess.run(["cmp", source, f"{home}/chunked0.bin"]).returncode == 0, "the chunked upload differs"
    for p in [f"{work}/copy.bin", f"{work}/copy-down.bin", f"{work}/nginx-down.bin", f"{work}/proxy-down.bin",
              f"{home}/big{r}.bin", f"{home}/chunked{r}.bin", f"{work}/static/big{r}.bin"]:
        os.remove(p)

    # Many small files, up: cp -r, the tar to nginx (stored, not unpacked), the proxy's archive upload.
    record("small cp", timed(lambda: sh(f"cp -r {small} {work}/small-copy")))
    record("small up nginx", timed(lambda: sh(f"tar -C {small} -cf - . | curl -sS --fail-with-body -T - {static}/small{r}.tar")))
    url = ticket(f"small{r}", "upload", size=tar_size, archive=True)
    record("small up proxy", timed(lambda: sh(f"tar -C {small} -cf - . | curl -sS --fail-with-body -X PATCH -H 'Upload-Offset: 0' -H 'Tus-Resumable: 1.0.0' "
                                              f"-H 'Content-Type: application/offset+octet-stream' -H 'Content-Length: {tar_size}' -H 'Transfer-Encoding:' -T - '{url}'"), "small up proxy"))
    if r == 0:
        assert tree_digest(f"{home}/small0") == small_digest, "the unpacked archive differs"
    # Down: cp -r out of the volume, nginx's tar unpacked, the proxy's tar unpacked.
    record("small down cp", timed(lambda: sh(f"cp -r {home}/small{r} {work}/small-down-cp")))
    os.makedirs(f"{work}/small-down-nginx")
    record("small down nginx", timed(lambda: sh(f"curl -sS --fail-with-body {static}/small{r}.tar | tar -C {work}/small-down-nginx -xf -")))
    os.makedirs(f"{work}/small-down-proxy")
    url = ticket(f"small{r}", "download", archive=True)
    record("small down proxy", timed(lambda: sh(f"curl -sS --fail-with-body '{url}' | tar -C {work}/small-down-proxy -xf -"), "small down proxy"))
    if r == 0:
        assert tree_digest(f"{work}/small-down-proxy/small0") == small_digest, "the downloaded archive differs"
    for p in [f"{work}/small-copy", f"{work}/small-down-cp", f"{work}/small-down-nginx", f"{work}/small-down-proxy", f"{home}/small{r}"]:
        shutil.rmtree(p)
    os.remove(f"{work}/static/small{r}.tar")


def median(name):
    return statistics.median(rows[name])


print(f"{mib} MiB file and {files} files of 1-16 KiB ({small_bytes / (1 << 20):.0f} MiB, tar {tar_size / (1 << 20):.0f} MiB); "
      f"median of {rounds} rounds, each ending in sync")
for label, name, baseline, amount in [
    ("file up: cp", "big cp", "big cp", mib), ("file up: nginx PUT (curl)", "big up nginx", "big cp", mib),
    ("file up: proxy, one PATCH (curl)", "big up proxy", "big cp", mib), ("file up: proxy, 16 MiB tus PATCHes", "big up proxy tus16", "big cp", mib),
    ("file down: cp", "big down cp", "big down cp", mib), ("file down: nginx GET (curl)", "big down nginx", "big down cp", mib),
    ("file down: proxy GET (curl)", "big down proxy", "big down cp", mib),
    ("files up: cp -r", "small cp", "small cp", small_bytes >> 20), ("files up: tar to nginx (stored)", "small up nginx", "small cp", small_bytes >> 20),
    ("files up: proxy archive upload", "small up proxy", "small cp", small_bytes >> 20),
    ("files down: cp -r", "small down cp", "small down cp", small_bytes >> 20),
    ("files down: nginx tar | tar x", "small down nginx", "small down cp", small_bytes >> 20),
    ("files down: proxy tar | tar x", "small down proxy", "small down cp", small_bytes >> 20),
]:
    t = median(name)
    ratio = median(baseline) / t * 100
    peak = f"  proxy peak RSS {peaks[name]:.1f} MiB" if name in peaks else ""
    print(f"  {label:38s} {t:7.2f} s  {amount / t:7.0f} MiB/s  {ratio:5.0f}% of cp   (rounds: {', '.join(f'{x:.2f}' for x in rows[name])}){peak}")
print(f"  byte-identical: file up/down and files up/down checked in round 1")
print(f"storage proxy peak RSS over all of these: {max(peaks.values()):.1f} MiB")

if peak_mib:
    big = f"{work}/peak.bin"
    sh(f"head -c {peak_mib << 20} /dev/urandom > {big}")
    url = ticket("peak.bin", "upload", size=peak_mib << 20)
    reset_peak()
    up = timed(lambda: sh(f"curl -sS --fail-with-body -X PATCH -H 'Upload-Offset: 0' -H 'Tus-Resumable: 1.0.0' "
                          f"-H 'Content-Type: application/offset+octet-stream' -T {big} '{url}'"))
    os.remove(big)
    url = ticket("peak.bin", "download")
    down = timed(lambda: sh(f"curl -sS --fail-with-body -o /dev/null '{url}'"))
    print(f"{peak_mib} MiB up in {up:.1f} s ({peak_mib / up:.0f} MiB/s), down in {down:.1f} s ({peak_mib / down:.0f} MiB/s); "
          f"storage proxy peak RSS: {peak_rss():.1f} MiB")
