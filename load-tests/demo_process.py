"""Starting the demo-api for the load-test scripts: one process (with its
workers, if any) in a session of its own, on 127.0.0.1, answering /health
before the caller goes on."""
import http.client
import subprocess
import sys
import time


def start_demo(demo, port, data, extra=(), prefix=(), timeout=30):
    """Starts `prefix + demo` on `port` with `data` as its data directory and
    `extra` flags; returns (the process, seconds until /health answered).
    Exits the script if it does not answer within `timeout` seconds."""
    t0 = time.time()
    p = subprocess.Popen(list(prefix) + [demo, "--port", str(port), "--data-dir", data, "--log-level", "error",
                                         *extra],
                         stdout=subprocess.DEVNULL, start_new_session=True)
    while time.time() - t0 < timeout:
        try:
            c = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            c.request("GET", "/health")
            if c.getresponse().status == 200:
                return p, time.time() - t0
        except (OSError, http.client.HTTPException):
            time.sleep(0.05)
    p.kill()
    sys.exit(f"demo-api {' '.join(extra)} did not answer /health within {timeout} s")
