"""Drives the web board in headless Chromium (Debian's chromium and chromium-driver, through
Selenium; nothing is downloaded). Run by tests/tests/board.rs, which starts the federation,
holds the task `hold` of job HELD running, and lets it go when this script prints RELEASE.

    board_test.py BOARD_URL HELD_JOB TRAINED_JOB COMPONENTS SCREENSHOT_DIR

Checks: the job page draws the DAG (one node per component); `hold`'s status goes from
running to success on the page without a reload; the trained job's task page draws a metric
plot with points; the job list and the queue render. Saves a PNG of every page. Prints OK at
the end; any failure raises (non-zero exit) with what was awaited and what was seen.
"""

import os
import re
import sys

from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

base, held, trained, components, shots = sys.argv[1:6]
components = int(components)
os.makedirs(shots, exist_ok=True)


def say(line):
    print(line, flush=True)


options = webdriver.ChromeOptions()
options.binary_location = "/usr/bin/chromium"
for arg in ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
            "--window-size=1400,1000"]:
    options.add_argument(arg)
driver = webdriver.Chrome(service=Service(executable_path="/usr/bin/chromedriver"), options=options)


def wait(what, condition, timeout=60):
    seen = {"last": None}

    def check(d):
        try:
            value = condition(d)
        except Exception as e:  # an element not there yet
            seen["last"] = repr(e)
            return False
        seen["last"] = value
        return value

    try:
        return WebDriverWait(driver, timeout, poll_frequency=0.2).until(check)
    except Exception:
        raise AssertionError(f"timed out after {timeout}s waiting for {what}; last seen: {seen['last']}")


def shot(name):
    path = os.path.join(shots, name)
    driver.save_screenshot(path)
    say(f"screenshot {path}")


def status_of(key):
    for el in driver.find_elements(By.CSS_SELECTOR, "[data-status-of]"):
        if el.get_attribute("data-status-of") == key:
            return el.text
    return None


def node_class(component):
    for g in driver.find_elements(By.CSS_SELECTOR, "svg.dag g.node"):
        if g.get_attribute("data-component") == component:
            return g.get_attribute("class")
    return None


try:
    # The job page of the running 3-party job: its DAG, one node per component.
    driver.get(f"{base}/jobs/{held}")
    nodes = wait("the DAG's nodes", lambda d: d.find_elements(By.CSS_SELECTOR, "svg.dag g.node"))
    assert len(nodes) == components, f"{len(nodes)} DAG nodes, expected {components}"
    edges = driver.find_elements(By.CSS_SELECTOR, "svg.dag path.edge")
    assert len(edges) >= components - 1, f"{len(edges)} DAG edges"
    wait("hold to show running", lambda d: status_of("hold") == "running")
    assert "s-running" in (node_class("hold") or ""), node_class("hold")
    wait("the live event stream to connect",
         lambda d: d.find_element(By.CSS_SELECTOR, "[data-live]").text.startswith("live updates: on"))
    driver.execute_script("window.__marker = 'not reloaded';")
    shot("job-running.png")

    # fedflow lets the task go; the page must follow without a reload.
    say("RELEASE")
    wait("hold to show success", lambda d: status_of("hold") == "success", timeout=90)
    wait("hold's DAG node to turn success", lambda d: "s-success" in (node_class("hold") or ""))
    wait("the job status to show success",
         lambda d: d.find_element(By.CSS_SELECTOR, "[data-job-status]").text == "success", timeout=90)
    marker = driver.execute_script("return window.__marker;")
    assert marker == "not reloaded", f"the page was reloaded (marker {marker!r})"
    # Every party's own status of hold followed too.
    cells = [el for el in driver.find_elements(By.CSS_SELECTOR, "[data-status-of]")
             if el.get_attribute("data-status-of").startswith("hold|")]
    assert len(cells) == 3, f"{len(cells)} party cells of hold"
    wait("every party's hold cell to show success",
         lambda d: all(el.text == "success" for el in cells))
    shot("job-success.png")

    # The task page of the finished training job: its metric plot is drawn.
    driver.get(f"{base}/jobs/{trained}/tasks/train")
    lines = wait("a metric plot's line", lambda d: d.find_elements(By.CSS_SELECTOR, "svg.plot path.line"))
    titles = [p.get_attribute("data-title") for p in driver.find_elements(By.CSS_SELECTOR, "svg.plot")]
    assert any(t.startswith("loss") for t in titles), f"plots {titles}"
    loss = driver.find_element(By.CSS_SELECTOR, "svg.plot[data-title^='loss'] path.line")
    points = re.findall(r"[ML]\s*([\d.]+),([\d.]+)", loss.get_attribute("d"))
    assert len(points) >= 10, f"the loss line has {len(points)} points"
    assert len({y for _, y in points}) > 1, "the loss line is flat"
    box = loss.rect
    assert box["width"] > 100 and box["height"] > 20, f"the loss line is drawn in {box}"
    assert any(t.startswith("roc") for t in titles), f"plots {titles}"
    shot("task-metrics.png")

    # The held job's task page: attempts, per-party statuses, the log on this party.
    driver.get(f"{base}/jobs/{held}/tasks/hold")
    wait("the attempts table", lambda d: d.find_element(By.CSS_SELECTOR, "table.attempts"))
    shot("task-hold.png")

    # The job list (both jobs, and the search by id) and the queue.
    driver.get(f"{base}/jobs")
    rows = wait("the job list", lambda d: d.find_elements(By.CSS_SELECTOR, "tr[data-job-row]"))
    ids = {r.get_attribute("data-job-row") for r in rows}
    assert {held, trained} <= ids, f"job list {ids}"
    shot("jobs.png")
    driver.get(f"{base}/jobs?status=success&q={trained[-8:]}")
    rows = wait("the filtered job list", lambda d: d.find_elements(By.CSS_SELECTOR, "tr[data-job-row]"))
    ids = {r.get_attribute("data-job-row") for r in rows}
    assert trained in ids and held not in ids, f"filtered job list {ids}"
    driver.get(f"{base}/queue")
    wait("the queue page", lambda d: d.find_element(By.TAG_NAME, "h1").text == "Queue")
    shot("queue.png")
    say("OK")
finally:
    driver.quit()
