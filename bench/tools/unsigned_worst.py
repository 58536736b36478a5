"""What an unsigned body costs before the signature holds, per preset that
reads its body first (fields in the body: Linear, Mailgun, Microsoft Graph; a
sorted form: Twilio), beside a header-signed preset (generic_webhook), at a
large `max_body_bytes` (one Envoy worker, loopback; part of `make bench`).

Each row sends the same-size unsigned body three times and reports the
filter's own time from the audit record (`verify_us`, median) and Envoy's
RSS growth. The rule (issue 25): bounded, linear, and small next to the body
itself; the header-signed row is the floor (the body is hashed for the audit
record and the MAC)."""
import base64
import json
import statistics
import sys
import time

from combo_edge import envoy as h

SIZE = int(sys.argv[1]) if len(sys.argv) > 1 else 32 * 1024 * 1024
ROWS = [
    # (preset, content type, body maker, extra headers)
    ("generic_webhook", "application/json",
     lambda n: b'{"pad":"' + b"x" * n + b'"}', {"x-combo-signature": "sha256=" + "0" * 64,
                                               "x-combo-timestamp": str(int(time.time()))}),
    ("linear", "application/json",
     lambda n: b'{"pad":[' + b'{"a":[1,{"b":"x"}]},' * (n // 20) + b'1],"webhookTimestamp":' +
     str(int(time.time() * 1000)).encode() + b"}", {"linear-signature": "00" * 32}),
    ("mailgun", "application/json",
     lambda n: b'{"event-data":"' + b"x" * n + b'","signature":{"timestamp":"' + str(int(time.time())).encode() +
     b'","token":"t","signature":"' + b"0" * 64 + b'"}}', {}),
    ("microsoft_graph", "application/json",
     lambda n: b'{"value":[{"pad":"' + b"y" * n + b'","clientState":"nope"}]}', {}),
    ("twilio", "application/x-www-form-urlencoded",
     lambda n: b"a=" + b"x" * n + b"&b=1", {"x-twilio-signature": base64.b64encode(b"\0" * 20).decode()}),
    ("twilio (fields)", "application/x-www-form-urlencoded",
     lambda n: b"a=1&" * (n // 4), {"x-twilio-signature": base64.b64encode(b"\0" * 20).decode()}),
]
CONFIG = {
    "generic_webhook": {"secret": "k"},
    "linear": {"secret": "k"},
    "mailgun": {"secret": "k"},
    "microsoft_graph": {"secret": "k"},
    "twilio": {"secret": "k", "scheme": {"public_url": "https://hooks.example.com"}},
}


def audit_us(envoy, since: int) -> list[int]:
    rows = [json.loads(line.split("webhook_audit ", 1)[1]) for line in envoy.logs().splitlines()[since:]
            if "webhook_audit {" in line]
    return [r["verify_us"] for r in rows]


def main():
    triggers = [{"id": f"trg_{p}", "source": p, **cfg, "action": {"agent_id": "agent"}} for p, cfg in CONFIG.items()]
    cfg = {"max_body_bytes": 64 * 1024 * 1024, "triggers": triggers}
    backend = h.Backend("agent")
    port = h.free_port()
    boot = h.single_upstream(cfg, backend.port, port)
    boot["static_resources"]["listeners"][0]["per_connection_buffer_limit_bytes"] = 68 * 1024 * 1024
    envoy = h.Envoy(boot, concurrency=1, wasm_log_level="info").wait_ready()
    print(f"unsigned bodies of {SIZE / 2**20:.0f} MiB, one worker, build {h.BUILD}")
    print(f"| preset | answer | filter's own time, ms (median of 3) | Envoy RSS growth, MiB |")
    print("|---|---|---:|---:|")
    failed = False
    try:
        for name, ctype, make, extra in ROWS:
            preset = name.split(" ")[0]
            body = make(SIZE)
            before = envoy.rss_kb()
            since = len(envoy.logs().splitlines())
            answers = []
            for _ in range(3):
                r = h.request(port, f"/v1/webhook/generic/trg_{preset}", body, dict(extra, **{"content-type": ctype}))
                answers.append(f"{r.status} {r.error_code() if r.body.startswith(b'{') else ''}".strip())
            time.sleep(0.3)
            us = audit_us(envoy, since)
            grown = (envoy.rss_kb() - before) / 1024
            med = statistics.median(us) / 1000 if us else float("nan")
            print(f"| {name} | {answers[-1]} | {med:.1f} | {grown:.0f} |", flush=True)
            failed |= any(a.startswith("5") for a in answers) or backend.received() != []
    finally:
        envoy.stop()
        backend.stop()
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
