"""Session creation throughput for Tools/bench/managers.sh: clients POST /session (enqueueOnly)
to the given managers in turn for a fixed time; the agent is excluded first, so every session
stays PENDING. Prints creations per second and latency percentiles.
    python managers_bench.py MANAGERS CLIENTS SECONDS ACCESS_KEY SECRET_KEY PORT...
"""
import datetime
import hashlib
import hmac
import http.client
import json
import statistics
import sys
import threading
import time

managers, clients, seconds, access, secret = int(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3]), sys.argv[4], sys.argv[5]
ports = sys.argv[6:]
API_VERSION = "v7.20230615"


def call(connection, port, method, path, body=None):
    host = f"127.0.0.1:{port}"
    date = datetime.datetime.now(datetime.timezone.utc).isoformat()
    ctype = "application/json"
    sts = "\n".join([method, path, date, "host:" + host, "content-type:" + ctype, "x-backendai-version:" + API_VERSION, hashlib.sha256(b"").hexdigest()])
    k1 = hmac.new(secret.encode(), date[:10].replace("-", "").encode(), hashlib.sha256).digest()
    k2 = hmac.new(k1, host.encode(), hashlib.sha256).digest()
    signature = hmac.new(k2, sts.encode(), hashlib.sha256).hexdigest()
    connection.request(method, path, body=None if body is None else json.dumps(body), headers={
        "Date": date, "Content-Type": ctype, "X-BackendAI-Version": API_VERSION, "Host": host,
        "Authorization": f"BackendAI signMethod=HMAC-SHA256, credential={access}:{signature}"})
    response = connection.getresponse()
    return response.status, json.loads(response.read() or b"{}")


# Wait for the agent, then keep the scheduler off it: sessions are created and wait.
deadline = time.time() + 60
agent = None
while time.time() < deadline and agent is None:
    try:
        status, body = call(http.client.HTTPConnection(f"127.0.0.1:{ports[0]}"), ports[0], "POST", "/admin/gql",
                            {"query": "{ agent_list(limit: 10, offset: 0) { items { id status } } }"})
        items = body.get("data", {}).get("agent_list", {}).get("items", [])
        alive = [a["id"] for a in items if a["status"] == "ALIVE"]
        agent = alive[0] if alive else None
    except OSError:
        pass
    if agent is None:
        time.sleep(0.3)
assert agent, "the agent did not register"
status, body = call(http.client.HTTPConnection(f"127.0.0.1:{ports[0]}"), ports[0], "POST", "/manager/scheduler/operation",
                    {"op": "exclude-agents", "args": [agent]})
assert status < 300, (status, body)
# No concurrent-session cap for the benchmark's keypair.
status, body = call(http.client.HTTPConnection(f"127.0.0.1:{ports[0]}"), ports[0], "POST", "/admin/gql",
                    {"query": 'mutation { modify_keypair_resource_policy(name: "default", props: {max_concurrent_sessions: 0}) { ok msg } }'})
assert body.get("data", {}).get("modify_keypair_resource_policy", {}).get("ok"), body

latencies, failures = [], []
lock = threading.Lock()
stop = time.time() + seconds


def client(number):
    port = ports[number % len(ports)]
    connection = http.client.HTTPConnection(f"127.0.0.1:{port}")
    i = 0
    while time.time() < stop:
        i += 1
        start = time.perf_counter()
        status, body = call(connection, port, "POST", "/session", {"name": f"b{number}-{i}", "image": "hangar/python:3.11-bookworm",
                                                                 "enqueueOnly": True, "config": {"resources": {"cpu": "1", "mem": "256m"}}})
        elapsed = time.perf_counter() - start
        with lock:
            (latencies if status in (200, 201) else failures).append(elapsed if status in (200, 201) else (status, str(body)[:200]))


threads = [threading.Thread(target=client, args=(n,)) for n in range(clients)]
for t in threads:
    t.start()
for t in threads:
    t.join()
ms = sorted(x * 1000 for x in latencies)
p = lambda f: ms[min(len(ms) - 1, int(len(ms) * f))] if ms else float("nan")
print(f"{managers} manager(s): {len(latencies) / seconds:.0f} sessions created/s ({len(latencies)} in {seconds:.0f} s, {len(failures)} refused), "
      f"latency p50 {p(0.5):.1f} ms, p99 {p(0.99):.1f} ms" + (f"; first refusal: {failures[0]}" if failures else ""))
