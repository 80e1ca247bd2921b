"""A stand-in for the subnet validator's submission API, on loopback, for tests/submit.rs.

Like the validator (chainswarm risk-assesment): POST /api/v1/submissions?network= checks every
row with the same schema (pydantic: the fields, their types, score in [0, 1]), answers 400 for
an empty list and 422 for a row that fails, and stores every row as it comes, without
deduplication; GET /api/v1/submissions/{submitter}/latest?network= reads back the submitter's
latest date. GET /_rows returns what is stored and how many POSTs arrived.

usage: mock_validator.py [--fail-first N] [--reject-alert ID] [--drop-after-store K]
  --fail-first N        answer the first N POSTs 500, storing nothing
  --reject-alert ID     answer 422 to a POST holding that alert_id
  --drop-after-store K  store the K-th POST, then close the connection without answering
Prints "port N" once listening.
"""
import argparse
import json
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import List, Optional
from urllib.parse import parse_qs, urlparse

from pydantic import BaseModel, Field, ValidationError


class SubmitterSubmission(BaseModel):
    submission_id: str
    submitter_id: str
    processing_date: str
    window_days: int
    alert_id: str
    score: float = Field(ge=0.0, le=1.0)
    model_version: str
    model_github_url: str
    score_metadata: Optional[str] = None


class BatchSubmission(BaseModel):
    submissions: List[SubmitterSubmission]


ROWS = []
POSTS = [0]
LOCK = threading.Lock()
OPTS = None


class Handler(BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def answer(self, status, body):
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):
        url = urlparse(self.path)
        if url.path == "/_rows":
            with LOCK:
                return self.answer(200, {"rows": ROWS, "posts": POSTS[0]})
        parts = url.path.strip("/").split("/")
        if len(parts) == 5 and parts[:3] == ["api", "v1", "submissions"] and parts[4] == "latest":
            with LOCK:
                mine = [r for r in ROWS if r["submitter_id"] == parts[3]]
                if not mine:
                    return self.answer(404, {"detail": f"No submissions found for miner {parts[3]}"})
                date = max(r["processing_date"] for r in mine)
                group = [r for r in mine if r["processing_date"] == date]
                return self.answer(200, {
                    "submitter_id": parts[3], "network": parse_qs(url.query).get("network", [""])[0],
                    "processing_date": date, "window_days": group[-1]["window_days"],
                    "submission_count": len(group), "model_version": group[-1]["model_version"],
                    "model_github_url": group[-1]["model_github_url"], "latest_timestamp": "2025-11-01T00:00:00",
                })
        self.answer(404, {"detail": "Not Found"})

    def do_POST(self):
        url = urlparse(self.path)
        body = self.rfile.read(int(self.headers.get("content-length", 0)))
        with LOCK:
            POSTS[0] += 1
            n = POSTS[0]
        if url.path != "/api/v1/submissions":
            return self.answer(404, {"detail": "Not Found"})
        if "network" not in parse_qs(url.query):
            return self.answer(422, {"detail": [{"loc": ["query", "network"], "msg": "Field required"}]})
        if n <= OPTS.fail_first:
            return self.answer(500, {"detail": "Internal Server Error"})
        try:
            batch = BatchSubmission.model_validate_json(body)
        except ValidationError as e:
            return self.answer(422, {"detail": json.loads(e.json())})
        if not batch.submissions:
            return self.answer(400, {"detail": "No submissions provided"})
        if any(s.alert_id == OPTS.reject_alert for s in batch.submissions):
            return self.answer(422, {"detail": [{"loc": ["body", "submissions"], "msg": f"alert {OPTS.reject_alert} refused"}]})
        with LOCK:
            ROWS.extend(s.model_dump() for s in batch.submissions)
        if n == OPTS.drop_after_store:
            self.connection.shutdown(socket.SHUT_RDWR)
            self.close_connection = True
            return
        first = batch.submissions[0]
        self.answer(200, {"status": "success", "submitter_id": first.submitter_id,
                          "network": parse_qs(url.query)["network"][0],
                          "processing_date": first.processing_date,
                          "submissions_count": len(batch.submissions)})


def main():
    global OPTS
    p = argparse.ArgumentParser()
    p.add_argument("--fail-first", type=int, default=0)
    p.add_argument("--reject-alert", default=None)
    p.add_argument("--drop-after-store", type=int, default=0)
    OPTS = p.parse_args()
    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    print(f"port {server.server_address[1]}", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
