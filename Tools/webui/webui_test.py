"""End-to-end test of Hangar's web UI in headless Chromium (Selenium), against `hangard dev`.

Run by Tools/webui/webui-test.sh, which starts the cluster and makes the users. Each step
asserts what a person would see; screenshots of every page go to the artifacts folder.
    python webui_test.py URL ADMIN_EMAIL ADMIN_PASSWORD USER_EMAIL USER_PASSWORD BLOCKED_EMAIL ARTIFACTS
"""
import json
import sys
import time

from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.action_chains import ActionChains
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.support.ui import WebDriverWait

URL, ADMIN, ADMIN_PW, USER, USER_PW, BLOCKED, ARTIFACTS = sys.argv[1:8]
failures = []


def browser(width=1280, height=800, phone=False):
    options = webdriver.ChromeOptions()
    for arg in ["--headless=new", "--no-sandbox", "--disable-dev-shm-usage", f"--window-size={width},{height}"]:
        options.add_argument(arg)
    if phone:
        # A window cannot be narrower than 500 px; a phone's viewport is emulated.
        options.add_experimental_option("mobileEmulation", {"deviceMetrics": {"width": width, "height": height, "pixelRatio": 2}})
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
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
        shot(d, "05-console")

    @step("terminal shows a typed command's output")
    def terminal(d):
        row(d, "webui-a").find_element(By.CSS_SELECTOR, "button[data-action=terminal]").click()
        wait(d, lambda d: "Connected" in d.find_element(By.ID, "terminal-status").text)
        wait(d, lambda d: "#" in (d.execute_script("return document.getElementById('terminal').readText()") or "") or "$" in (d.execute_script("return document.getElementById('terminal').readText()") or ""), 30)
        d.find_element(By.CSS_SELECTOR, "#terminal textarea").send_keys("echo hangar-$((6*7)) && stty size\n")
        wait(d, lambda d: "hangar-42" in d.execute_script("return document.getElementById('terminal').readText()"), 30)
        text = d.execute_script("return document.getElementById('terminal').readText()")
        # The terminal was fitted to its box: far wider than the default 80 columns.
        size = [line for line in text.splitlines() if line.strip() and line.split()[0].isdigit()]
        assert size and int(size[-1].split()[1]) > 80, f"stty size after fitting: {size}"
        shot(d, "06-terminal")

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
        shot(d, "08-data")
        d.get(URL + "#/summary")
        wait(d, lambda d: d.find_elements(By.CSS_SELECTOR, "progress"))
        assert "running sessions" in d.find_element(By.ID, "main").text
        shot(d, "09-summary")
        d.get(URL + "#/admin")
        wait(d, lambda d: d.find_elements(By.CSS_SELECTOR, f"tr[data-user='{USER}']"))
        assert "ALIVE" in d.find_element(By.ID, "main").text
        shot(d, "10-admin")

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
        # The session list holds only the user's own sessions.
        d.get(URL + "#/sessions?show=all")
        wait(d, lambda d: d.find_elements(By.CSS_SELECTOR, "table.sessions, p.empty"))
        assert row(d, "webui-a") is None

    @step("an admin deactivates a user, who is logged out")
    def deactivate(a, u):
        a.get(URL + "#/admin")
        button = wait(a, lambda d: d.find_elements(By.CSS_SELECTOR, f"tr[data-user='{USER}'] button[data-action=deactivate]"))[0]
        button.click()
        wait(a, lambda d: "inactive" in d.find_element(By.CSS_SELECTOR, f"tr[data-user='{USER}']").text.lower())
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
    logs(admin)
    pages(admin)
    user_limits(user)
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
