"""Measurements for Tools/bench/webserver.sh: the webserver's added latency, and page loads."""
import base64
import hashlib
import hmac
import http.client
import json
import statistics
import sys
import time
from datetime import datetime, timezone

API_VERSION = "v7.20230615"


def signed_headers(method, path, host, access, secret, content_type="application/octet-stream"):
    """Backend.AI's request signature, as the official client computes it."""
    now = datetime.now(timezone.utc)
    date = now.isoformat()
    body_hash = hashlib.sha256(b"").hexdigest()
    to_sign = f"{method}\n{path}\n{date}\nhost:{host}\ncontent-type:{content_type}\nx-backendai-version:{API_VERSION}\n{body_hash}"
    k1 = hmac.new(secret.encode(), now.strftime("%Y%m%d").encode(), hashlib.sha256).digest()
    k2 = hmac.new(k1, host.encode(), hashlib.sha256).digest()
    signature = hmac.new(k2, to_sign.encode(), hashlib.sha256).hexdigest()
    return {"Date": date, "X-BackendAI-Version": API_VERSION, "Content-Type": content_type,
            "Authorization": f"BackendAI signMethod=HMAC-SHA256, credential={access}:{signature}"}


def timed(connection, method, path, headers, body=None):
    start = time.perf_counter()
    connection.request(method, path, body=body, headers=headers)
    response = connection.getresponse()
    body = response.read()
    elapsed = time.perf_counter() - start
    assert response.status == 200, (path, response.status, body[:200])
    return elapsed


def latency(manager, web, access, secret, user, password):
    login = http.client.HTTPConnection(web)
    login.request("POST", "/server/login", body=json.dumps({"username": user, "password": password}),
                  headers={"Content-Type": "application/json"})
    reply = login.getresponse()
    reply.read()
    cookie = reply.getheader("Set-Cookie").split(";")[0]
    direct, proxied = http.client.HTTPConnection(manager), http.client.HTTPConnection(web)
    d, p = [], []
    for i in range(3200):
        a = timed(direct, "GET", "/auth/role", signed_headers("GET", "/auth/role", manager, access, secret))
        b = timed(proxied, "GET", "/func/auth/role", {"Cookie": cookie, "X-BackendAI-Version": API_VERSION})
        if i >= 200:  # warm-up
            d.append(a)
            p.append(b)
    q = lambda xs, f: sorted(xs)[int(len(xs) * f)] * 1e6
    print("GET /auth/role, 3,000 each after 200 to warm up, one keep-alive connection each (loopback):")
    print(f"  direct to the manager (client signs): median {statistics.median(d) * 1e6:.0f} us, p99 {q(d, 0.99):.0f} us")
    print(f"  through the webserver (cookie):       median {statistics.median(p) * 1e6:.0f} us, p99 {q(p, 0.99):.0f} us")
    print(f"  added by the webserver: {(statistics.median(p) - statistics.median(d)) * 1e6:.0f} us at p50 (goal < 1000 us)")
    # A call with a body (the request body is streamed to the manager through a pump).
    query = json.dumps({"query": "{ keypair { access_key } }"})
    d, p = [], []
    for i in range(3200):
        a = timed(direct, "POST", "/admin/gql", signed_headers("POST", "/admin/gql", manager, access, secret, "application/json"), query)
        b = timed(proxied, "POST", "/func/admin/gql", {"Cookie": cookie, "X-BackendAI-Version": API_VERSION, "Content-Type": "application/json"}, query)
        if i >= 200:
            d.append(a)
            p.append(b)
    print("POST /admin/gql { keypair { access_key } }, 3,000 each after 200 to warm up:")
    print(f"  direct to the manager (client signs): median {statistics.median(d) * 1e6:.0f} us, p99 {q(d, 0.99):.0f} us")
    print(f"  through the webserver (cookie):       median {statistics.median(p) * 1e6:.0f} us, p99 {q(p, 0.99):.0f} us")
    print(f"  added by the webserver: {(statistics.median(p) - statistics.median(d)) * 1e6:.0f} us at p50 (goal < 1000 us)")


def page(url, user, password):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support.ui import WebDriverWait

    options = webdriver.ChromeOptions()
    for arg in ["--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1280,800"]:
        options.add_argument(arg)
    driver = webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=options)
    sizes = "return performance.getEntries().filter(e => e.transferSize !== undefined).map(e => [e.name, e.transferSize])"
    try:
        results = []
        for run in range(5):
            driver.execute_cdp_cmd("Network.clearBrowserCache", {})
            driver.delete_all_cookies()
            driver.get("about:blank")
            start = time.perf_counter()
            driver.get(url)
            WebDriverWait(driver, 30, poll_frequency=0.01).until(lambda d: d.find_elements(By.ID, "username"))
            ready = time.perf_counter() - start
            transferred = sum(size for _, size in driver.execute_script(sizes))
            results.append((ready, transferred))
        ready, transferred = min(results)
        print(f"first page load (login form usable), cold cache, best of 5: {ready * 1000:.0f} ms, {transferred / 1024:.1f} KiB transferred (goal < 300 KiB)")
        start = time.perf_counter()
        driver.find_element(By.ID, "username").send_keys(user)
        driver.find_element(By.ID, "password").send_keys(password, Keys.ENTER)
        WebDriverWait(driver, 30, poll_frequency=0.01).until(lambda d: d.find_elements(By.CSS_SELECTOR, "table.sessions, p.empty"))
        after = time.perf_counter() - start
        total = sum(size for _, size in driver.execute_script(sizes))
        print(f"log in to the sessions page drawn: {after * 1000:.0f} ms; {total / 1024:.1f} KiB transferred in all (API answers included)")
        start = time.perf_counter()
        driver.execute_cdp_cmd("Network.clearBrowserCache", {})
        driver.get(url.rstrip("/") + "/vendor/xterm.js")
        elapsed = (time.perf_counter() - start) * 1000
        wire, decoded = driver.execute_script("const n = performance.getEntriesByType('navigation')[0]; return [n.transferSize, n.decodedBodySize]")
        print(f"terminal library (loaded when a terminal opens): {wire / 1024:.0f} KiB transferred ({decoded / 1024:.0f} KiB as text), {elapsed:.0f} ms")
    finally:
        driver.quit()


if __name__ == "__main__":
    if sys.argv[1] == "latency":
        latency(*sys.argv[2:8])
    else:
        page(*sys.argv[2:5])
