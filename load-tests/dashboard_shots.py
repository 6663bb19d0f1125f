#!/usr/bin/env python3
"""Screenshots of the loop dashboard (/_loop/) under three loads, in real
time (headless Chromium driven over its DevTools protocol: its own
--screenshot would run the page on virtual time, where a second passes in
milliseconds and per-second rates mean nothing). Writes docs/img/*.png.

Usage: python3 load-tests/dashboard_shots.py
Needs a release build (demo-api, phaseloop-load), chromium and
websocket-client (python3 -m pip install --user websocket-client).
The server runs on CPU 0, the load on CPU 1.
"""
import base64, json, os, shutil, subprocess, sys, tempfile, time, urllib.request

import websocket

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
REL = os.path.join(ROOT, "target", "release")
PORT = 3401
URL = f"http://127.0.0.1:{PORT}"


def screenshot(out, wait):
    chrome = subprocess.Popen(["chromium", "--headless", "--no-sandbox", "--disable-gpu",
                               "--hide-scrollbars", "--window-size=1400,1110",
                               "--remote-debugging-port=9333", "about:blank"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        for _ in range(100):
            try:
                tabs = json.load(urllib.request.urlopen("http://127.0.0.1:9333/json"))
                break
            except OSError:
                time.sleep(0.1)
        page = [t for t in tabs if t["type"] == "page"][0]
        ws = websocket.create_connection(page["webSocketDebuggerUrl"])
        ws.send(json.dumps({"id": 1, "method": "Page.navigate", "params": {"url": URL + "/_loop/"}}))
        time.sleep(wait)
        ws.send(json.dumps({"id": 2, "method": "Page.captureScreenshot", "params": {"format": "png"}}))
        while True:
            m = json.loads(ws.recv())
            if m.get("id") == 2:
                open(out, "wb").write(base64.b64decode(m["result"]["data"]))
                return
    finally:
        chrome.kill()


def main():
    data = tempfile.mkdtemp(prefix="phaseloop-shots-")
    server = subprocess.Popen(["taskset", "-c", "0", os.path.join(REL, "demo-api"),
                               "--port", str(PORT), "--data-dir", data], stdout=subprocess.DEVNULL)
    load = os.path.join(REL, "phaseloop-load")
    loads = {
        "plaintext": ["taskset", "-c", "1", load, "-c", "256", "-p", "16", "-d", "14", URL + "/plaintext"],
        "pbkdf2": ["taskset", "-c", "1", load, "-c", "64", "-d", "14", "-m", "POST", "-b",
                   '{"password":"pw","salt":"s"}', "--expect-status", "200,503", URL + "/api/hash"],
        "blocking": ["bash", "-c", "for i in 1 2 3 4 5; do curl -s -o /dev/null "
                     f"'{URL}/primes-blocking?limit=1500000'; sleep 2; done"],
    }
    try:
        time.sleep(1)
        for name, cmd in loads.items():
            running = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            screenshot(os.path.join(ROOT, "docs", "img", f"{name}.png"), 16)
            running.wait()
            time.sleep(2)
    finally:
        server.terminate()
        server.wait()
        shutil.rmtree(data, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
