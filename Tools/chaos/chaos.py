"""Chaos test of Hangar's control plane (run through Tools/scripts/chaos).

Several managers on one PostgreSQL database, agents that know every manager, and a storage
proxy, all real `hangard` processes on loopback. Clients create sessions (through any
manager), run code in them, destroy them and upload files, while a killer SIGKILLs a random
manager, an agent, the scheduling leader and the storage proxy in turn and restarts each.
Afterwards everything is restarted, every live session is destroyed, and the run checks:

  sessions_confirmed   sessions a manager said it created
  sessions_lost        of those, sessions the database does not have
  stuck_transitional   sessions still SCHEDULED/PREPARING/PULLING/CREATING/TERMINATING
  slots_leaked         CPU cores agents still have reserved once every session ended
  orphan_containers    kernel containers of this run left in the engine
  files_lost           uploads a storage proxy confirmed that do not read back identical

printed as name=value lines. Exits 1 when any of the last five is not 0 (or nothing was
confirmed). Loopback addresses only; bounded by --duration and --clients.
"""
import argparse
import datetime
import hashlib
import hmac
import http.client
import json
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.parse
import urllib.request

API_VERSION = "v7.20230615"
TRANSITIONAL = ("SCHEDULED", "PREPARING", "PULLING", "CREATING", "TERMINATING")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def log(*parts):
    print(f"[chaos {time.strftime('%H:%M:%S')}]", *parts, file=sys.stderr, flush=True)


class Role:
    """One hangard process that the killer may end and restart."""

    def __init__(self, name, argv, workdir):
        self.name, self.argv, self.workdir = name, argv, workdir
        self.process = None
        self.restarts = 0
        self.lock = threading.Lock()

    def start(self):
        with self.lock:
            out = open(os.path.join(self.workdir, f"{self.name}.log"), "ab")
            self.process = subprocess.Popen(self.argv, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)

    def alive(self):
        return self.process is not None and self.process.poll() is None

    def kill(self):
        with self.lock:
            if self.alive():
                self.process.send_signal(signal.SIGKILL)
                self.process.wait()

    def stop(self):
        with self.lock:
            if self.alive():
                self.process.send_signal(signal.SIGTERM)
                try:
                    self.process.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    self.process.kill()
                    self.process.wait()


class Cluster:
    def __init__(self, args):
        self.args = args
        self.bin = args.bin
        self.work = tempfile.mkdtemp(prefix="hangar-chaos.")
        self.database = self.create_database(args.postgres)
        self.secret = hashlib.sha256(os.urandom(32)).hexdigest()
        self.storage_port = free_port()
        self.storage_secret = hashlib.sha256(os.urandom(16)).hexdigest()
        os.makedirs(f"{self.work}/volume", exist_ok=True)
        with open(f"{self.work}/storage.toml", "w") as f:
            f.write(f'[storage-proxy]\nlisten = "127.0.0.1:{self.storage_port}"\nsecret = "{self.storage_secret}"\n'
                    f'[volumes.volume1]\nbackend = "vfs"\n[volumes.volume1.options]\nroot = "{self.work}/volume"\n'
                    f'[plugins]\nsearch_paths = ["{self.bin}"]\n')
        self.storage = Role("storage-proxy", [f"{self.bin}/hangard", "storage-proxy", "--config", f"{self.work}/storage.toml"], self.work)
        # Short reconciliation deadlines, so the end of the run sees repairs, not waits.
        with open(f"{self.work}/manager.toml", "w") as f:
            f.write("[manager]\nscheduling_interval = 0.3\nagent_lost_timeout = 30\nleader_timeout = 4\nreconcile_interval = 3\n"
                    "reconcile_scheduled_after = 10\nreconcile_starting_after = 45\nreconcile_terminating_after = 15\n"
                    'default_vfolder_host = "local:volume1"\n'
                    f'[storage-proxies.local]\nurl = "http://127.0.0.1:{self.storage_port}"\nsecret = "{self.storage_secret}"\n'
                    f'[plugins]\nsearch_paths = ["{self.bin}"]\n')
        self.managers, self.manager_ports = [], []
        for i in range(args.managers):
            port = free_port()
            data = f"{self.work}/manager{i}"
            os.makedirs(data, exist_ok=True)
            with open(f"{data}/cluster-secret", "w") as f:
                f.write(self.secret)
            self.manager_ports.append(port)
            self.managers.append(Role(f"manager{i}", [f"{self.bin}/hangard", "manager", "serve", "--config", f"{self.work}/manager.toml",
                                                      "--database", self.database, "--data-dir", data, "--listen", f"127.0.0.1:{port}"], self.work))
        urls = ", ".join(f'"http://127.0.0.1:{p}"' for p in self.manager_ports)
        self.agents = []
        for i in range(args.agents):
            with open(f"{self.work}/agent{i}.toml", "w") as f:
                f.write(f'[agent]\nid = "chaos-{i}"\nmanagers = [{urls}]\nlisten = "127.0.0.1:{free_port()}"\n'
                        f'scratch_dir = "{self.work}/scratch{i}"\nengine_socket = "{args.engine}"\nheartbeat_interval = 0.5\n'
                        # A container an agent killed mid-create cannot adopt goes soon.
                        'orphan_grace = 5\n')
            self.agents.append(Role(f"agent{i}", [f"{self.bin}/hangard", "agent", "--config", f"{self.work}/agent{i}.toml",
                                                  "--cluster-secret-file", f"{self.work}/manager0/cluster-secret"], self.work))
        self.access_key = self.secret_key = None

    @staticmethod
    def create_database(base):
        name = "hangar_chaos_" + hashlib.sha1(os.urandom(8)).hexdigest()[:12]
        subprocess.run(["psql", base, "-qAtc", f"CREATE DATABASE {name}"], check=True)
        head, _, tail = base.rpartition("/")
        query = ("?" + tail.split("?", 1)[1]) if "?" in tail else ""
        return f"{head}/{name}{query}"

    def sql(self, query):
        out = subprocess.run(["psql", self.database, "-qAtF", "\t", "-c", query], capture_output=True, text=True, check=True).stdout
        return [line.split("\t") for line in out.splitlines() if line]

    def start(self):
        out = subprocess.run([f"{self.bin}/hangard", "manager", "init", "--config", f"{self.work}/manager.toml", "--database", self.database,
                              "--data-dir", f"{self.work}/manager0"], capture_output=True, text=True, check=True).stdout
        for line in out.splitlines():
            if line.startswith("export BACKEND_ACCESS_KEY="):
                self.access_key = line.split("=", 1)[1]
            if line.startswith("export BACKEND_SECRET_KEY="):
                self.secret_key = line.split("=", 1)[1]
        assert self.access_key and self.secret_key, out
        self.storage.start()
        for role in self.managers + self.agents:
            role.start()
        deadline = time.time() + 60
        while time.time() < deadline:
            alive = self.sql("SELECT count(*) FROM agents WHERE status = 'ALIVE'")
            if int(alive[0][0]) == len(self.agents):
                return
            time.sleep(0.5)
        raise SystemExit("the agents did not register within 60 s; logs in " + self.work)

    def leader(self):
        rows = self.sql("SELECT holder FROM scheduler_leadership WHERE id = 1")
        holder = rows[0][0] if rows else ""
        for role, port in zip(self.managers, self.manager_ports):
            if holder.endswith(f":{port}"):
                return role
        return None

    # MARK: - API

    def call(self, method, path, body=None, manager=None, timeout=60):
        """A signed call to a manager (one that answers, when not named). Returns (status, JSON)."""
        ports = [manager] if manager else random.sample(self.manager_ports, len(self.manager_ports))
        last = None
        for port in ports:
            host = f"127.0.0.1:{port}"
            date = datetime.datetime.now(datetime.timezone.utc).isoformat()
            ctype = "application/json" if body is not None else "text/plain"
            sts = "\n".join([method, path, date, "host:" + host, "content-type:" + ctype, "x-backendai-version:" + API_VERSION,
                             hashlib.sha256(b"").hexdigest()])
            k1 = hmac.new(self.secret_key.encode(), date[:10].replace("-", "").encode(), hashlib.sha256).digest()
            k2 = hmac.new(k1, host.encode(), hashlib.sha256).digest()
            signature = hmac.new(k2, sts.encode(), hashlib.sha256).hexdigest()
            request = urllib.request.Request(f"http://{host}{path}", method=method, data=None if body is None else json.dumps(body).encode(),
                                             headers={"Date": date, "Content-Type": ctype, "X-BackendAI-Version": API_VERSION,
                                                      "Authorization": f"BackendAI signMethod=HMAC-SHA256, credential={self.access_key}:{signature}"})
            try:
                with urllib.request.urlopen(request, timeout=timeout) as response:
                    raw = response.read()
                    return response.status, json.loads(raw) if raw else {}
            except urllib.error.HTTPError as error:
                raw = error.read()
                try:
                    return error.code, json.loads(raw)
                except ValueError:
                    return error.code, {"raw": raw[:200].decode(errors="replace")}
            except (OSError, http.client.HTTPException) as error:
                last = error  # this manager is down (or died mid-call): the next one
        raise ConnectionError(f"no manager answered {method} {path}: {last}")


class Workload:
    def __init__(self, cluster, args):
        self.cluster, self.args = cluster, args
        self.stop = threading.Event()
        self.lock = threading.Lock()
        self.confirmed = {}  # session id -> name
        self.uploads = {}  # path -> sha256
        self.leader_kills = []  # when the leader was killed (µs)
        self.counts = {"create_failed": 0, "exec_ok": 0, "exec_failed": 0, "destroy_failed": 0, "upload_failed": 0}

    def count(self, key):
        with self.lock:
            self.counts[key] += 1

    def client(self, number):
        c = self.cluster
        iteration = 0
        while not self.stop.is_set():
            iteration += 1
            name = f"chaos-{number}-{iteration}"
            if iteration % 3 == 1:
                self.upload(f"c{number}-{iteration}.bin")
            try:
                status, body = c.call("POST", "/session", {"name": name, "image": self.args.image, "type": "interactive", "enqueueOnly": True,
                                                           "config": {"resources": {"cpu": "1", "mem": "256m"}}})
                session_id = body.get("sessionId") if isinstance(body, dict) else None
                if status in (200, 201) and session_id:
                    with self.lock:
                        self.confirmed[session_id] = name
                else:
                    self.count("create_failed")
                    if self.counts["create_failed"] <= 3:
                        log(f"create refused: {status} {json.dumps(body)[:300]}")
                    time.sleep(0.5)
                    continue
                deadline = time.time() + 60
                state = ""
                while time.time() < deadline and not self.stop.is_set():
                    _, info = c.call("GET", f"/session/{name}")
                    state = (info.get("result", info) if isinstance(info, dict) else {}).get("status", "")
                    if state in ("RUNNING", "TERMINATED", "CANCELLED", "ERROR"):
                        break
                    time.sleep(0.3)
                if state == "RUNNING":
                    status, result = c.call("POST", f"/session/{name}", {"mode": "query", "code": "print(6*7)", "runId": f"r{number}x{iteration}"})
                    self.count("exec_ok" if status == 200 and "42" in json.dumps(result) else "exec_failed")
                status, _ = c.call("DELETE", f"/session/{name}")
                if status >= 300:
                    self.count("destroy_failed")
            except (ConnectionError, OSError, ValueError) as error:
                self.count("create_failed")
                if self.counts["create_failed"] <= 3:
                    log(f"create failed: {error}")
                time.sleep(0.5)

    def upload(self, path):
        c = self.cluster
        data = os.urandom(256 << 10)
        try:
            status, ticket = c.call("POST", "/folders/chaosfiles/request-upload", {"path": path, "size": len(data)})
            if status != 200:
                self.count("upload_failed")
                return
            request = urllib.request.Request(ticket["url"] + "?token=" + ticket["token"], data=data, method="PATCH",
                                             headers={"Upload-Offset": "0", "Tus-Resumable": "1.0.0",
                                                      "Content-Type": "application/offset+octet-stream"})
            with urllib.request.urlopen(request, timeout=30) as response:
                if response.status in (200, 204) and int(response.headers.get("Upload-Offset", "0")) == len(data):
                    with self.lock:
                        self.uploads[path] = hashlib.sha256(data).hexdigest()
                    return
            self.count("upload_failed")
        except (ConnectionError, OSError, ValueError, KeyError, http.client.HTTPException):
            self.count("upload_failed")

    def killer(self):
        c = self.cluster
        victims = ["manager", "agent", "leader", "storage-proxy"]
        turn = 0
        while not self.stop.wait(self.args.kill_every):
            kind = victims[turn % len(victims)]
            turn += 1
            role = {"manager": lambda: random.choice(c.managers), "agent": lambda: random.choice(c.agents),
                    "leader": c.leader, "storage-proxy": lambda: c.storage}[kind]()
            if role is None:
                continue
            log(f"SIGKILL {role.name} ({kind})")
            if kind == "leader":
                with self.lock:
                    self.leader_kills.append(int(time.time() * 1_000_000))
            role.kill()
            with self.lock:
                self.counts[f"killed_{kind.replace('-', '_')}"] = self.counts.get(f"killed_{kind.replace('-', '_')}", 0) + 1
            time.sleep(2)
            role.start()


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--managers", type=int, default=3)
    parser.add_argument("--agents", type=int, default=2)
    parser.add_argument("--clients", type=int, default=100)
    parser.add_argument("--duration", type=float, default=120)
    parser.add_argument("--kill-every", type=float, default=6)
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument("--bin", required=True)
    parser.add_argument("--engine", required=True)
    parser.add_argument("--postgres", required=True)
    parser.add_argument("--image", default="hangar/python:3.11-bookworm")
    args = parser.parse_args()
    if not (1 <= args.managers <= 9 and 1 <= args.agents <= 9 and 1 <= args.clients <= 500 and 1 <= args.duration <= 3600):
        raise SystemExit("bounds: managers and agents 1-9, clients 1-500, duration 1-3600 s")
    random.seed(args.seed)
    cluster = Cluster(args)
    log(f"work folder {cluster.work}, database {cluster.database}")
    workload = Workload(cluster, args)
    try:
        cluster.start()
        status, body = cluster.call("POST", "/folders", {"name": "chaosfiles", "host": "local:volume1"})
        assert status in (200, 201), (status, body)
        threads = [threading.Thread(target=workload.client, args=(n,), daemon=True) for n in range(args.clients)]
        threads.append(threading.Thread(target=workload.killer, daemon=True))
        for thread in threads:
            thread.start()
        time.sleep(args.duration)
        workload.stop.set()
        for thread in threads:
            thread.join(timeout=120)
        results = settle(cluster, workload)
    finally:
        for role in cluster.agents + cluster.managers + [cluster.storage]:
            role.stop()
        cleanup_containers(cluster)
    for key, value in results.items():
        print(f"{key}={value}")
    bad = any(results[k] for k in ("sessions_lost", "stuck_transitional", "slots_leaked", "orphan_containers", "files_lost"))
    if bad or results["sessions_confirmed"] == 0:
        log("FAILED; logs and the database kept: " + cluster.work + ", " + cluster.database)
        for role in cluster.managers + cluster.agents + [cluster.storage]:
            tail = open(os.path.join(cluster.work, f"{role.name}.log"), errors="replace").read()[-1500:]
            log(f"--- {role.name}.log (end) ---\n{tail}")
        sys.exit(1)
    shutil.rmtree(cluster.work, ignore_errors=True)
    subprocess.run(["psql", args.postgres, "-qAtc", f"DROP DATABASE IF EXISTS {cluster.database.rsplit('/', 1)[1].split('?')[0]} WITH (FORCE)"],
                   capture_output=True)


def settle(cluster, workload):
    """Everything up again, every live session destroyed, then the counts."""
    for role in cluster.managers + cluster.agents + [cluster.storage]:
        if not role.alive():
            role.start()
    time.sleep(3)
    deadline = time.time() + 150
    while time.time() < deadline:
        live = cluster.sql("SELECT name, status FROM sessions WHERE status NOT IN ('TERMINATED', 'CANCELLED', 'ERROR')")
        if not live:
            break
        for name, status in live:
            if status != "TERMINATING":
                try:
                    cluster.call("DELETE", f"/session/{name}", timeout=30)
                except ConnectionError:
                    pass
        time.sleep(3)
    # One more reconciliation (and the agents' orphan grace) for containers whose removal a
    # killed agent missed.
    time.sleep(12)
    known = {row[0] for row in cluster.sql("SELECT id FROM sessions")}
    lost = [sid for sid in workload.confirmed if sid not in known]
    stuck = cluster.sql("SELECT count(*) FROM sessions WHERE status IN (" + ", ".join(f"'{s}'" for s in TRANSITIONAL) + ")")[0][0]
    occupied = 0.0
    for (slots,) in cluster.sql("SELECT occupied_slots FROM agents"):
        occupied += float(json.loads(slots or "{}").get("cpu", 0) or 0)
    kernels = {row[0] for row in cluster.sql("SELECT id FROM kernels")}
    orphans = [k for k in engine_kernels(cluster.args.engine) if k in kernels]
    files_lost = 0
    for path, digest in workload.uploads.items():
        try:
            status, ticket = cluster.call("POST", "/folders/chaosfiles/request-download", {"path": path})
            with urllib.request.urlopen(ticket["url"] + "?token=" + ticket["token"], timeout=30) as response:
                if hashlib.sha256(response.read()).hexdigest() != digest:
                    files_lost += 1
        except (ConnectionError, OSError, KeyError, ValueError):
            files_lost += 1
    results = {"sessions_confirmed": len(workload.confirmed), "sessions_lost": len(lost), "slots_leaked": occupied,
               "orphan_containers": len(orphans), "stuck_transitional": int(stuck), "files_confirmed": len(workload.uploads),
               "files_lost": files_lost}
    if occupied == 0:
        results["slots_leaked"] = 0
    results.update(workload.counts)
    # Leader failover: from each SIGKILL of the leader to the next session any manager scheduled
    # (an upper bound: it includes waiting for a session that can be scheduled).
    delays = []
    for killed in workload.leader_kills:
        rows = cluster.sql(f"SELECT min(scheduled_at) FROM sessions WHERE scheduled_at > {killed}")
        if rows and rows[0][0]:
            delays.append((int(rows[0][0]) - killed) / 1000)
    if delays:
        results["leader_failover_to_next_schedule_ms_max"] = round(max(delays))
        results["leader_failover_to_next_schedule_ms_mean"] = round(sum(delays) / len(delays))
    repairs = cluster.sql("SELECT count(*) FROM sessions WHERE status_info LIKE '%reconciliation%'")
    results["sessions_repaired_by_reconciliation"] = int(repairs[0][0])
    return results


def engine_kernels(socket_path):
    """Kernel ids of the containers the engine holds (running or not), by Hangar's label."""
    connection = http.client.HTTPConnection("localhost")
    connection.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    connection.sock.connect(socket_path)
    filters = json.dumps({"label": ["io.hangar.kernel-id"]})
    connection.request("GET", "/containers/json?all=1&filters=" + urllib.parse.quote(filters), headers={"Host": "localhost"})
    containers = json.loads(connection.getresponse().read() or b"[]")
    return [c.get("Labels", {}).get("io.hangar.kernel-id") for c in containers]


def cleanup_containers(cluster):
    """Removes what this run left in the engine (after the counts), so the next user finds it clean."""
    try:
        known = {row[0] for row in cluster.sql("SELECT id FROM kernels")}
        connection = http.client.HTTPConnection("localhost")
        connection.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        connection.sock.connect(cluster.args.engine)
        filters = json.dumps({"label": ["io.hangar.kernel-id"]})
        connection.request("GET", "/containers/json?all=1&filters=" + urllib.parse.quote(filters), headers={"Host": "localhost"})
        for container in json.loads(connection.getresponse().read() or b"[]"):
            if container.get("Labels", {}).get("io.hangar.kernel-id") in known:
                c2 = http.client.HTTPConnection("localhost")
                c2.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                c2.sock.connect(cluster.args.engine)
                c2.request("DELETE", f"/containers/{container['Id']}?force=1", headers={"Host": "localhost"})
                c2.getresponse().read()
    except Exception as error:  # noqa: BLE001 - cleanup is best effort, the counts are already taken
        log(f"cleanup: {error}")


if __name__ == "__main__":
    main()
