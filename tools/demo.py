"""`make run`: Envoy with envoy/envoy.yaml, two demo agent backends, one signed
and one forged delivery. Serves until interrupted (Ctrl-C)."""
import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
from combo_edge import envoy as h  # installed into the venv by the Makefile

CLI = REPO / "target/release/combo-webhook"
SECRET = "demo-secret-change-me"  # COMBO_DEMO_SECRET in envoy/envoy.yaml
URL = "http://127.0.0.1:10000/v1/webhook/generic/trg_ticket_escalated"


def show(req):
    tags = {k: v for k, v in req["headers"] if k.startswith("x-combo-") and k not in ("x-combo-signature", "x-combo-timestamp")}
    print(f"  [agent backend] {req['method']} {req['path']}")
    for k, v in sorted(tags.items()):
        print(f"  [agent backend]   {k}: {v}")


def main():
    envoy_bin = os.environ.get("ENVOY") or h.envoy_binary()
    backends = [h.Backend(name, port, on_request=show) for name, port in (("ticket-triage", 18081), ("billing", 18082))]
    log = REPO / ".tools/demo-envoy.log"
    envoy = subprocess.Popen([envoy_bin, "-c", "envoy/envoy.yaml", "--concurrency", "2", "--base-id", "4242",
                              "--log-path", str(log), "-l", "info"], cwd=REPO)
    try:
        for _ in range(300):
            if envoy.poll() is not None:
                sys.exit(f"envoy exited ({envoy.returncode}); see {log}")
            try:
                urllib.request.urlopen("http://127.0.0.1:9901/ready", timeout=1)
                break
            except OSError:
                time.sleep(0.1)
        body = json.dumps({"action": "escalated", "ticket": {"id": 4711, "priority": "high", "customer": "ACME"}}).encode()
        out = subprocess.run([CLI, "sign", "--secret-env", "DEMO_SECRET"], input=body, capture_output=True, check=True,
                             env=dict(os.environ, DEMO_SECRET=SECRET)).stdout.decode()
        # Header names are case-insensitive; the CLI prints them lowercase.
        headers = {k.lower(): v for k, v in (line.split(": ", 1) for line in out.strip().splitlines())}
        headers["content-type"] = "application/json"
        port, path = 10000, URL.split("10000", 1)[1]

        print(f"\n1) signed delivery (signed with `combo-webhook sign`):\n   POST {URL}")
        r = h.request(port, path, body, headers)
        print(f"   -> {r.status} {r.body.decode()}")

        forged = dict(headers, **{"x-combo-signature": "sha256=" + "0" * 64})
        print(f"\n2) forged delivery (wrong signature):\n   POST {URL}")
        r = h.request(port, path, body, forged)
        print(f"   -> {r.status} {r.body.decode()}  (the backend received nothing)")

        print(f"""
Envoy is serving webhooks on http://127.0.0.1:10000 (admin http://127.0.0.1:9901).
Try:  echo -n '{{"action":"escalated","ticket":{{"id":1}}}}' > /tmp/body.json
      target/release/combo-webhook sign --secret {SECRET} --body /tmp/body.json
      curl -i {URL} -H 'content-type: application/json' \\
           -H 'X-Combo-Timestamp: <ts>' -H 'X-Combo-Signature: <sig>' --data-binary @/tmp/body.json
Envoy log: {log}
Ctrl-C to stop.""", flush=True)
        while envoy.poll() is None:
            time.sleep(1)
    except KeyboardInterrupt:
        pass
    finally:
        envoy.terminate()
        try:
            envoy.wait(timeout=10)
        except subprocess.TimeoutExpired:
            envoy.kill()
        for b in backends:
            b.stop()


if __name__ == "__main__":
    def stop(*_):
        raise KeyboardInterrupt
    signal.signal(signal.SIGTERM, stop)
    main()
