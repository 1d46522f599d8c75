#!/usr/bin/env python3
"""A webhook receiver that checks Sluice's signatures, for trying push delivery.

    pip install standardwebhooks
    python3 examples/webhook_receiver.py whsec_... [port]

It answers 204 to every correctly signed delivery and prints it, 401 to anything else.
Sluice sends the same `webhook-id` (the event id) on every retry of one event, so a real
receiver dedups on it; this one remembers the ids it has seen and says so.
"""
import json
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from standardwebhooks.webhooks import Webhook, WebhookVerificationError

if len(sys.argv) < 2 or not sys.argv[1].startswith("whsec_"):
    sys.exit(__doc__)
verifier = Webhook(sys.argv[1])
port = int(sys.argv[2]) if len(sys.argv) > 2 else 9000
seen = set()


class Receiver(BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("content-length", 0)))
        try:
            event = verifier.verify(body, dict(self.headers))
        except WebhookVerificationError as e:
            self.send_response(401)
            self.end_headers()
            print(f"refused: {e}", flush=True)
            return
        event_id = self.headers["webhook-id"]
        again = " (seen before: a retry or a replay)" if event_id in seen else ""
        seen.add(event_id)
        print(f"{event['type']} {event_id}{again}: {json.dumps(event['data'])}", flush=True)
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args):
        pass


print(f"listening on http://127.0.0.1:{port}/", flush=True)
ThreadingHTTPServer(("127.0.0.1", port), Receiver).serve_forever()
