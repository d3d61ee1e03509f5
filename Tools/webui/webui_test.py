"""End-to-end test of Hangar's web UI in headless Chromium (Selenium), against `hangard dev`.

Run by Tools/webui/webui-test.sh, which starts the cluster and makes the users. Each step
asserts what a person would see; screenshots of every page go to the artifacts folder.
    python webui_test.py URL ADMIN_EMAIL ADMIN_PASSWORD USER_EMAIL USER_PASSWORD BLOCKED_EMAIL ARTIFACTS IMAGE
"""
import hashlib
import json
import os
import sys
import time

from selenium import webdriver
from selenium.common.exceptions import NoAlertPresentException, StaleElementReferenceException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.action_chains import ActionChains
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.support.ui import Select, WebDriverWait

URL, ADMIN, ADMIN_PW, USER, USER_PW, BLOCKED, ARTIFACTS, IMAGE = sys.argv[1:9]
failures = []
DOWNLOADS = os.path.join(ARTIFACTS, "downloads")
os.makedirs(DOWNLOADS, exist_ok=True)


def browser(width=1280, height=800, phone=False):
    options = webdriver.ChromeOptions()
    for arg in ["--headless=new", "--no-sandbox", "--disable-dev-shm-usage", f"--window-size={width},{height}"]:
        options.add_argument(arg)
    if phone:
        # A window cannot be narrower than 500 px; a phone's viewport is emulated.
        options.add_experimental_option("mobileEmulation", {"deviceMetrics": {"width": width, "height": height, "pixelRatio": 2}})
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    options.add_experimental_option("prefs", {"download.default_directory": DOWNLOADS, "download.prompt_for_download": False})
    return webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=options)


def step(name):
    """Runs a named check; a failure is recorded with a screenshot and the run goes on."""
    def wrap(fn):
        def run(*args):
            try:
                fn(*args)
                print(f"PASS {name}", flush=True)
            except Exception as error:  # noqa: BLE001 - every failure is reported by name
                failures.append(name)
                print(f"FAIL {name}: {type(error).__name__}: {error}", flush=True)
                for driver in args:
                    if hasattr(driver, "save_screenshot"):
                        driver.save_screenshot(f"{ARTIFACTS}/failed-{name.replace(' ', '-')}.png")
        return run
    return wrap


def wait(driver, condition, timeout=60):
    return WebDriverWait(driver, timeout, poll_frequency=0.2).until(lambda d: condition(d))


def click(driver, selector, timeout=60):
    """Clicks what `selector` finds, again if the page redrew it in between (pages draw their
    sections as their data arrives)."""
    deadline = time.time() + timeout
    while True:
        try:
            wait(driver, lambda d: d.find_elements(By.CSS_SELECTOR, selector), max(1, deadline - time.time()))[0].click()
            return
        except StaleElementReferenceException:
            if time.time() > deadline:
                raise
            time.sleep(0.2)


def text_of(driver, selector):
    """The text of what `selector` finds, read again if the page redrew it."""
    for _ in range(50):
        try:
            found = driver.find_elements(By.CSS_SELECTOR, selector)
            return found[0].text if found else ""
        except StaleElementReferenceException:
            time.sleep(0.1)
    return ""


def alert(driver, timeout=30):
    """The alert (or confirm) the page opens, once it is open."""
    deadline = time.time() + timeout
    while True:
        try:
            return driver.switch_to.alert
        except NoAlertPresentException:
            if time.time() > deadline:
                raise
            time.sleep(0.1)


def shot(driver, name):
    driver.save_screenshot(f"{ARTIFACTS}/{name}.png")


def log_in(driver, email, password):
    driver.get(URL)
    wait(driver, lambda d: d.find_elements(By.ID, "username"))
    driver.find_element(By.ID, "username").clear()
    driver.find_element(By.ID, "username").send_keys(email)
    driver.find_element(By.ID, "password").clear()
    driver.find_element(By.ID, "password").send_keys(password, Keys.ENTER)


def error_text(driver):
    shown = [e.text for e in driver.find_elements(By.CSS_SELECTOR, "[role=alert]") if e.is_displayed()]
    return " ".join(shown)


def row(driver, session):
    rows = driver.find_elements(By.CSS_SELECTOR, f"tr[data-session='{session}']")
    return rows[0] if rows else None


def fetch(driver, method, path):
    """Calls the API from inside the page (the browser's cookie): (status, body)."""
    return driver.execute_async_script(
        "const done = arguments[2];"
        "fetch(arguments[1], {method: arguments[0], headers: {'X-BackendAI-Version': 'v7.20230615'}})"
        ".then(async r => done([r.status, await r.text()])).catch(e => done([0, String(e)]));", method, path)


admin = browser()
user = browser()
phone = None
try:
    @step("wrong password is refused")
    def wrong_password(d):
        log_in(d, ADMIN, "not-the-password")
        wait(d, lambda d: "invalid user ID or password" in error_text(d))
        shot(d, "01-login-refused")

    @step("login")
    def login(d):
        log_in(d, ADMIN, ADMIN_PW)
        wait(d, lambda d: d.find_elements(By.ID, "new-session"))
        assert "superadmin" in d.find_element(By.CSS_SELECTOR, ".who").text
        shot(d, "02-sessions-empty")

    @step("launch a session from the launcher")
    def launch(d):
        d.find_element(By.ID, "new-session").click()
        wait(d, lambda d: d.find_elements(By.ID, "launch"))
        d.find_element(By.ID, "session-name").send_keys("webui-a")
        # The engine may hold other images (tests commit and pull some): pick the test image.
        Select(d.find_element(By.ID, "image")).select_by_value(IMAGE)
        # The sliders are bounded by the policy and the free capacity (the dev agent has 2 cores).
        note = d.find_element(By.ID, "capacity-note").text
        assert "Up to 2 CPU cores" in note and d.find_element(By.ID, "cpu").get_attribute("max") == "2", note
        shot(d, "03-launcher")
        d.find_element(By.ID, "launch").click()
        # The row appears and turns RUNNING through the server-sent events, without a reload.
        wait(d, lambda d: row(d, "webui-a") is not None and "RUNNING" in row(d, "webui-a").text, 120)
        shot(d, "04-session-running")

    @step("code console prints 42")
    def console(d):
        row(d, "webui-a").find_element(By.CSS_SELECTOR, "button[data-action=console]").click()
        d.find_element(By.ID, "code").send_keys("print(6*7)")
        d.find_element(By.ID, "run").click()
        wait(d, lambda d: "42" in d.find_element(By.ID, "console-output").text and "exit code 0" in d.find_element(By.ID, "console-output").text)
        # A plot comes back as a media record and is drawn as an image.
        d.find_element(By.ID, "code").clear()
        d.find_element(By.ID, "code").send_keys("import matplotlib.pyplot as plt\nplt.plot([1, 4, 9, 16])")
        d.find_element(By.ID, "run").click()
        plot = wait(d, lambda d: [i for i in d.find_elements(By.CSS_SELECTOR, "#console-output img.media") if d.execute_script("return arguments[0].naturalWidth", i) > 100])
        assert plot, "no plot drawn"
        shot(d, "05-console")

    @step("terminal shows a typed command's output")
    def terminal(d):
        row(d, "webui-a").find_element(By.CSS_SELECTOR, "button[data-action=terminal]").click()
        wait(d, lambda d: "Connected" in d.find_element(By.ID, "terminal-status").text)
        wait(d, lambda d: "#" in (d.execute_script("return document.getElementById('terminal').readText()") or "") or "$" in (d.execute_script("return document.getElementById('terminal').readText()") or ""), 30)
        # The page fits the terminal to its box once it is drawn, and tells the session.
        size = wait(d, lambda d: d.find_element(By.ID, "terminal").get_attribute("data-size"), 30)
        cols = int(size.split("x")[1])
        assert cols > 80, f"fitted to {size}"
        d.find_element(By.CSS_SELECTOR, "#terminal textarea").send_keys("echo hangar-$((6*7))\n")
        wait(d, lambda d: "hangar-42" in d.execute_script("return document.getElementById('terminal').readText()"), 30)

        # The session sees the new size (tmux applies a client's resize a moment later).
        def sees_size(d):
            d.find_element(By.CSS_SELECTOR, "#terminal textarea").send_keys("stty size\n")
            time.sleep(0.5)
            text = d.execute_script("return document.getElementById('terminal').readText()")
            return any(line.split() == [size.split("x")[0], str(cols)] for line in text.splitlines())
        wait(d, sees_size, 20)
        shot(d, "06-terminal")

    app_url = {}

    @step("jupyter opens in a new tab and runs a cell")
    def jupyter(d):
        main_tab = d.current_window_handle
        row(d, "webui-a").find_element(By.CSS_SELECTOR, "button[data-app=jupyter]").click()
        wait(d, lambda d: len(d.window_handles) > 1)
        d.switch_to.window([h for h in d.window_handles if h != main_tab][0])
        try:
            # Jupyter starts on the first connection (cold: a few seconds).
            wait(d, lambda d: d.current_url.startswith("http") and d.find_elements(By.ID, "notebook_list"), 120)
            base = d.current_url.split("/tree")[0]
            app_url["jupyter"] = base + "/tree"
            shot(d, "08a-jupyter-tree")
            created = d.execute_async_script(
                "const done = arguments[0];"
                "fetch('/api/contents', {method: 'POST', headers: {'Content-Type': 'application/json'}, body: JSON.stringify({type: 'notebook'})})"
                ".then(r => r.json()).then(j => done(j.path)).catch(e => done('error: ' + e));")
            assert created.endswith(".ipynb"), created
            d.get(f"{base}/notebooks/{created}")
            wait(d, lambda d: d.find_elements(By.CSS_SELECTOR, "#kernel_indicator_icon.kernel_idle_icon"), 90)
            cell = d.find_element(By.CSS_SELECTOR, ".cell .CodeMirror")
            cell.click()
            ActionChains(d).send_keys("print(6*7)").key_down(Keys.SHIFT).send_keys(Keys.ENTER).key_up(Keys.SHIFT).perform()
            wait(d, lambda d: any("42" in e.text for e in d.find_elements(By.CSS_SELECTOR, ".output_subarea")), 60)
            shot(d, "08b-jupyter-cell")
        finally:
            for handle in d.window_handles:
                if handle != main_tab:
                    d.switch_to.window(handle)
                    d.close()
            d.switch_to.window(main_tab)

    @step("logs")
    def logs(d):
        row(d, "webui-a").find_element(By.CSS_SELECTOR, "button[data-action=logs]").click()
        wait(d, lambda d: d.find_elements(By.ID, "logs") and "Loading" not in d.find_element(By.ID, "logs").text)
        shot(d, "07-logs")

    @step("data, summary and admin pages")
    def pages(d):
        d.get(URL + "#/data")
        wait(d, lambda d: d.find_elements(By.ID, "folder-name"))
        d.find_element(By.ID, "folder-name").send_keys("webui-folder", Keys.ENTER)
        wait(d, lambda d: d.find_elements(By.CSS_SELECTOR, "tr[data-folder='webui-folder']"))
        # A folder is renamed.
        d.find_element(By.ID, "folder-name").send_keys("webui-rename", Keys.ENTER)
        click(d, "tr[data-folder='webui-rename'] button[data-action=rename]")
        prompt = d.switch_to.alert
        prompt.send_keys("webui-renamed")
        prompt.accept()
        wait(d, lambda d: d.find_elements(By.CSS_SELECTOR, "tr[data-folder='webui-renamed']"))
        # A folder goes to the trash and comes back.
        d.find_element(By.ID, "folder-name").send_keys("webui-trash", Keys.ENTER)
        click(d, "tr[data-folder='webui-trash'] button[data-action=trash]")
        d.switch_to.alert.accept()
        wait(d, lambda d: d.find_elements(By.CSS_SELECTOR, "tr[data-trashed='webui-trash']"))
        shot(d, "08-data-trash")
        click(d, "tr[data-trashed='webui-trash'] button[data-action=restore]")
        wait(d, lambda d: d.find_elements(By.CSS_SELECTOR, "tr[data-folder='webui-trash']") and not d.find_elements(By.CSS_SELECTOR, "tr[data-trashed='webui-trash']"))
        shot(d, "08-data")
        d.get(URL + "#/summary")
        wait(d, lambda d: d.find_elements(By.CSS_SELECTOR, "progress"))
        assert "running sessions" in d.find_element(By.ID, "main").text
        shot(d, "09-summary")
        d.get(URL + "#/admin")
        wait(d, lambda d: d.find_elements(By.CSS_SELECTOR, f"tr[data-user='{USER}']"))
        assert "ALIVE" in d.find_element(By.ID, "main").text
        # Resource groups choose their scheduler from the plugins the manager can load.
        choices = wait(d, lambda d: d.find_elements(By.CSS_SELECTOR, "tr[data-group='default'] select[data-field=scheduler] option"))
        names = {o.get_attribute("value") for o in choices}
        assert {"fifo", "lifo", "drf"} <= names, names
        wait(d, lambda d: d.find_elements(By.CSS_SELECTOR, "tr[data-policy='default']"))
        assert "mock" in text_of(d, "[data-agent] .plugins"), text_of(d, "[data-agent] .plugins")
        # An admin adds a user from the page.
        d.find_element(By.ID, "new-user-email").send_keys("newbie@example.com")
        d.find_element(By.ID, "new-user-password").send_keys("newbie-password", Keys.ENTER)
        wait(d, lambda d: d.find_elements(By.CSS_SELECTOR, "tr[data-user='newbie@example.com']"))
        shot(d, "10-admin")

    @step("admin creates and edits policies, keypairs, resource groups and image aliases")
    def administer(d):
        d.get(URL + "#/admin")
        wait(d, lambda d: d.find_elements(By.ID, "policy-name"))
        # A policy from the form, then edited through the same form.
        d.find_element(By.ID, "policy-name").send_keys("webui-small")
        d.find_element(By.ID, "policy-cpu").send_keys("1")
        d.find_element(By.ID, "policy-mem").send_keys("2")
        d.find_element(By.ID, "policy-sessions").send_keys("3", Keys.ENTER)
        wait(d, lambda d: "1 CPU" in text_of(d, "tr[data-policy='webui-small']") and "2.0 GiB" in text_of(d, "tr[data-policy='webui-small']"))
        click(d, "tr[data-policy='webui-small'] button[data-action=edit]")
        wait(d, lambda d: d.find_element(By.ID, "policy-sessions").get_attribute("value") == "3")
        d.find_element(By.ID, "policy-sessions").clear()
        d.find_element(By.ID, "policy-sessions").send_keys("5", Keys.ENTER)
        wait(d, lambda d: text_of(d, "tr[data-policy='webui-small'] td:nth-child(3)") == "5")
        # A keypair for the second user on that policy: its keys are shown once.
        wait(d, lambda d: d.find_elements(By.CSS_SELECTOR, "#new-keypair-policy option[value='webui-small']"))
        d.find_element(By.ID, "new-keypair-user").send_keys(USER)
        Select(d.find_element(By.ID, "new-keypair-policy")).select_by_value("webui-small")
        d.find_element(By.CSS_SELECTOR, "#new-keypair button[type=submit]").click()
        wait(d, lambda d: d.find_elements(By.ID, "new-keypair-keys"))
        new_key = d.find_element(By.CSS_SELECTOR, "#new-keypair-keys .mono").text
        assert new_key.startswith("AK"), new_key
        wait(d, lambda d: d.find_elements(By.CSS_SELECTOR, f"tr[data-keypair='{new_key}']"))
        assert Select(d.find_element(By.CSS_SELECTOR, f"tr[data-keypair='{new_key}'] select")).first_selected_option.get_attribute("value") == "webui-small"
        shot(d, "10b-admin-keypair")
        # A policy in use cannot be deleted: the API's reason is shown.
        click(d, "tr[data-policy='webui-small'] button[data-action=delete]")
        alert(d).accept()
        refusal = alert(d)
        assert "still use" in refusal.text, refusal.text
        refusal.accept()
        # The keypair goes, then the policy.
        click(d, f"tr[data-keypair='{new_key}'] button[data-action=delete]")
        alert(d).accept()
        wait(d, lambda d: not d.find_elements(By.CSS_SELECTOR, f"tr[data-keypair='{new_key}']"))
        click(d, "tr[data-policy='webui-small'] button[data-action=delete]")
        alert(d).accept()
        wait(d, lambda d: not d.find_elements(By.CSS_SELECTOR, "tr[data-policy='webui-small']"))
        # A resource group with a scheduler from the catalog, then deleted.
        d.find_element(By.ID, "new-group-name").send_keys("webui-rg")
        d.find_element(By.ID, "new-group-description").send_keys("made in the browser")
        Select(d.find_element(By.ID, "new-group-scheduler")).select_by_value("lifo")
        d.find_element(By.CSS_SELECTOR, "#new-group button[type=submit]").click()
        wait(d, lambda d: d.find_elements(By.CSS_SELECTOR, "tr[data-group='webui-rg']"))
        assert Select(d.find_element(By.CSS_SELECTOR, "tr[data-group='webui-rg'] select[data-field=scheduler]")).first_selected_option.get_attribute("value") == "lifo"
        status, body = fetch(d, "GET", "/func/scaling-groups?group=default")
        assert status == 200 and "webui-rg" in body, (status, body)
        shot(d, "10c-admin-groups")
        click(d, "tr[data-group='webui-rg'] button[data-action=delete]")
        alert(d).accept()
        wait(d, lambda d: not d.find_elements(By.CSS_SELECTOR, "tr[data-group='webui-rg']"))
        # An alias for the test image, then removed.
        d.find_element(By.ID, "new-alias").send_keys("webui-py")
        Select(d.find_element(By.ID, "new-alias-target")).select_by_value(IMAGE)
        d.find_element(By.CSS_SELECTOR, "#new-alias-form button[type=submit]").click()
        wait(d, lambda d: d.find_elements(By.CSS_SELECTOR, f"tr[data-image='{IMAGE}'] button[data-alias='webui-py']"))
        shot(d, "10d-admin-images")
        click(d, "button[data-alias='webui-py']")
        wait(d, lambda d: not d.find_elements(By.CSS_SELECTOR, "button[data-alias='webui-py']"))

    big = {}

    @step("upload 50 MiB with progress, resumed after a network drop, and download it byte-identical")
    def transfer(d):
        path = os.path.join(DOWNLOADS, "..", "big.bin")
        with open(path, "wb") as f:
            f.write(os.urandom(50 << 20))
        big["sha"] = hashlib.sha256(open(path, "rb").read()).hexdigest()
        d.get(URL + "#/data?folder=webui-folder")
        wait(d, lambda d: d.find_elements(By.ID, "upload-files"))
        # Every state the progress label shows, recorded as it changes.
        d.execute_script("window.uploadStates = []; new MutationObserver(() => document.querySelectorAll('.upload-state').forEach("
                         "e => window.uploadStates.push(e.textContent))).observe(document.getElementById('uploads'), {subtree: true, childList: true, characterData: true});")
        d.find_element(By.ID, "upload-files").send_keys(os.path.abspath(path))
        wait(d, lambda d: any(s.endswith("%") and s != "0%" for s in d.execute_script("return window.uploadStates")), 60)
        # The network drops for three seconds in the middle of the upload.
        d.execute_cdp_cmd("Network.enable", {})
        d.execute_cdp_cmd("Network.emulateNetworkConditions", {"offline": True, "latency": 0, "downloadThroughput": -1, "uploadThroughput": -1})
        time.sleep(3)
        d.execute_cdp_cmd("Network.emulateNetworkConditions", {"offline": False, "latency": 0, "downloadThroughput": -1, "uploadThroughput": -1})
        wait(d, lambda d: "uploaded" in d.find_element(By.CSS_SELECTOR, "[data-upload='big.bin'] .upload-state").text, 180)
        states = d.execute_script("return window.uploadStates")
        middle = [s for s in states if s.endswith("%") and s not in ("0%", "100%")]
        assert middle, f"no progress between 0 and 100%: {states[:20]}"
        shot(d, "09a-uploaded")
        wait(d, lambda d: d.find_elements(By.CSS_SELECTOR, "tr[data-file='big.bin'] button[data-action=download]"))
        target = os.path.join(DOWNLOADS, "big.bin")
        if os.path.exists(target):
            os.remove(target)
        d.find_element(By.CSS_SELECTOR, "tr[data-file='big.bin'] button[data-action=download]").click()
        deadline = time.time() + 120
        while time.time() < deadline and not (os.path.exists(target) and os.path.getsize(target) == 50 << 20):
            time.sleep(0.2)
        got = hashlib.sha256(open(target, "rb").read()).hexdigest()
        assert got == big["sha"], f"downloaded {os.path.getsize(target)} bytes, sha256 {got} != {big['sha']}"

    @step("share a folder read-only; the other user accepts, reads, and cannot write")
    def share(a, u):
        a.get(URL + "#/data")
        click(a, "tr[data-folder='webui-folder'] button[data-action=share]")
        a.find_element(By.ID, "share-email").send_keys(USER)
        a.find_element(By.ID, "share-send").click()
        wait(a, lambda d: "Invited" in d.find_element(By.ID, "share-form").text)
        shot(a, "09b-shared")
        u.get(URL + "#/data")
        click(u, "[data-folder='webui-folder'] button[data-action=accept]")
        wait(u, lambda d: d.find_elements(By.CSS_SELECTOR, "tr[data-folder='webui-folder'] td.permission"))
        assert "read-only" in u.find_element(By.CSS_SELECTOR, "tr[data-folder='webui-folder'] td.permission").text
        shot(u, "09c-shared-folder-seen")
        u.get(URL + "#/data?folder=webui-folder")
        wait(u, lambda d: d.find_elements(By.CSS_SELECTOR, "tr[data-file='big.bin']"))
        # The page offers no changes, and the API refuses them with its reason.
        assert u.find_elements(By.ID, "read-only-note") and not u.find_elements(By.ID, "upload-files")
        status, body = u.execute_async_script(
            "const done = arguments[0];"
            "fetch('/func/folders/webui-folder/request-upload', {method: 'POST', headers: {'Content-Type': 'application/json', 'X-BackendAI-Version': 'v7.20230615'},"
            " body: JSON.stringify({path: 'small.txt', size: 12})}).then(async r => done([r.status, await r.text()])).catch(e => done([0, String(e)]));")
        assert status == 403 and "needs 'rw'" in body, (status, body)
        shot(u, "09d-read-only-folder")

    @step("a user sees no admin page and cannot reach another user's session")
    def user_limits(d):
        log_in(d, USER, USER_PW)
        wait(d, lambda d: d.find_elements(By.ID, "new-session"))
        nav = d.find_element(By.CSS_SELECTOR, "nav").text
        assert "Admin" not in nav, nav
        d.get(URL + "#/admin")
        wait(d, lambda d: "for administrators" in error_text(d))
        shot(d, "11-user-no-admin")
        status, body = fetch(d, "GET", "/func/stream/session/webui-a/apps")
        assert status == 404, (status, body)
        status, body = fetch(d, "GET", "/func/admin/keypairs")
        assert status == 403, (status, body)
        # The admin's Jupyter, opened by this user: refused, never relayed.
        assert app_url.get("jupyter"), "the jupyter step did not run"
        d.get(app_url["jupyter"])
        wait(d, lambda d: "another user" in d.find_element(By.TAG_NAME, "body").text, 30)
        shot(d, "11b-user-other-app-refused")
        d.get(URL)
        status, body = d.execute_async_script(
            "const done = arguments[0];"
            "fetch('/server/app-proxy', {method: 'POST', headers: {'Content-Type': 'application/json'}, body: JSON.stringify({session: 'webui-a', app: 'jupyter'})})"
            ".then(async r => done([r.status, await r.text()])).catch(e => done([0, String(e)]));")
        assert status == 404, (status, body)
        # The session list holds only the user's own sessions.
        d.get(URL + "#/sessions?show=all")
        wait(d, lambda d: d.find_elements(By.CSS_SELECTOR, "table.sessions, p.empty"))
        assert row(d, "webui-a") is None

    @step("an admin deactivates a user, who is logged out")
    def deactivate(a, u):
        a.get(URL + "#/admin")
        click(a, f"tr[data-user='{USER}'] button[data-action=deactivate]")
        wait(a, lambda d: "inactive" in text_of(d, f"tr[data-user='{USER}']").lower())
        shot(a, "12-admin-deactivated")
        # The user's next request finds the login gone (the webserver trusts a session for
        # up to session_cache_ttl seconds).
        deadline = time.time() + 20
        while time.time() < deadline:
            status, _ = fetch(u, "GET", "/func/auth/keypair")
            if status == 401:
                break
            time.sleep(1)
        assert status == 401, status
        u.get(URL)
        wait(u, lambda d: d.find_elements(By.ID, "username"))
        log_in(u, USER, USER_PW)
        wait(u, lambda d: "inactive" in error_text(d))
        shot(u, "13-deactivated-login")

    @step("failed logins are blocked after 10")
    def blocked(d):
        for attempt in range(10):
            log_in(d, BLOCKED, f"wrong-{attempt}")
            wait(d, lambda d: "invalid user ID or password" in error_text(d))
        log_in(d, BLOCKED, "wrong-again")
        wait(d, lambda d: "Too many failed logins" in error_text(d))
        shot(d, "14-login-blocked")

    @step("terminate from the list")
    def terminate(d):
        d.get(URL + "#/sessions")
        wait(d, lambda d: row(d, "webui-a") is not None)
        row(d, "webui-a").find_element(By.CSS_SELECTOR, "button[data-action=terminate]").click()
        d.switch_to.alert.accept()
        wait(d, lambda d: row(d, "webui-a") is None, 60)

    @step("phone width")
    def phone_width(d):
        log_in(d, ADMIN, ADMIN_PW)
        wait(d, lambda d: d.find_elements(By.ID, "new-session"))
        width = d.execute_script("return [window.innerWidth, document.documentElement.scrollWidth]")
        assert width[0] == 390 and width[1] <= 390, f"viewport and page width at phone width: {width}"
        shot(d, "15-phone-sessions")

    @step("keyboard only: log out with Tab and Enter")
    def keyboard(d):
        d.get(URL + "#/sessions")
        wait(d, lambda d: d.find_elements(By.ID, "logout"))
        for _ in range(60):
            if d.switch_to.active_element.get_attribute("id") == "logout":
                break
            ActionChains(d).send_keys(Keys.TAB).perform()
        assert d.switch_to.active_element.get_attribute("id") == "logout"
        d.switch_to.active_element.send_keys(Keys.ENTER)
        wait(d, lambda d: d.find_elements(By.ID, "username"))

    wrong_password(admin)
    login(admin)
    launch(admin)
    console(admin)
    terminal(admin)
    jupyter(admin)
    logs(admin)
    pages(admin)
    administer(admin)
    transfer(admin)
    user_limits(user)
    share(admin, user)
    deactivate(admin, user)
    blocked(user)
    terminate(admin)
    phone = browser(390, 844, phone=True)
    phone_width(phone)
    keyboard(admin)
    # Nothing the pages did may break the Content-Security-Policy or throw.
    problems = [e["message"] for e in admin.get_log("browser") + user.get_log("browser")
                if "Content Security Policy" in e["message"] or "Uncaught" in e["message"]]
    if problems:
        failures.append("browser console")
        print("FAIL browser console:\n  " + "\n  ".join(problems))
    else:
        print("PASS browser console (no CSP violation, no uncaught error)")
finally:
    for d in (admin, user, phone):
        if d:
            d.quit()

print(json.dumps({"failures": failures}))
sys.exit(1 if failures else 0)
