#!/usr/bin/env python3
"""Tries, from outside, what one person (or anyone who reaches the port) could do to take Rill
down or overspend, and prints what happened: the figures of issue 22, measured again.

    python3 scripts/measure-attacks.py [--rill target/release/rill] [--fake target/debug/fake-provider]

It starts its own fake provider and Rill servers on loopback (accounts mode, a fresh database in
a temporary directory each), so nothing else is touched. Build first:
`cargo leptos build --release --split && cargo build -p fake-provider`. Standard library only.
Every loop is bounded in count and time. Client addresses come from 127.0.0.0/8, so one machine
can be many clients.
"""

import argparse
import concurrent.futures as futures
import http.client
import json
import os
import socket
import sqlite3
import subprocess
import tempfile
import time
import uuid

PRICES = '[prices."fake/fake-model"]\ninput = 100.0\noutput = 2000.0\n'


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def memory_mib(pid):
    """(resident now, resident peak) of a process, in MiB."""
    fields = {}
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            name, _, rest = line.partition(":")
            fields[name] = rest.split()
    return int(fields["VmRSS"][0]) // 1024, int(fields["VmHWM"][0]) // 1024


class Client:
    """One browser: its cookies, and the loopback address it connects from."""

    def __init__(self, port, source="127.0.0.1"):
        self.port, self.source, self.cookies = port, source, {}

    def request(self, method, path, body=None, timeout=30):
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout,
                                          source_address=(self.source, 0))
        headers = {"host": f"127.0.0.1:{self.port}"}
        if self.cookies:
            headers["cookie"] = "; ".join(f"{k}={v}" for k, v in self.cookies.items())
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            headers["content-type"] = "application/json"
        conn.request(method, path, body=data, headers=headers)
        response = conn.getresponse()
        payload = response.read()
        for header, value in response.getheaders():
            if header.lower() == "set-cookie":
                name, _, rest = value.partition("=")
                self.cookies[name] = rest.split(";")[0]
        conn.close()
        return response.status, payload

    def post(self, endpoint, body=None, timeout=30):
        return self.request("POST", f"/api/{endpoint}", body if body is not None else {}, timeout)

    def turn(self, text, conversation=None, model=None):
        """Sends a message and reads the whole turn; returns (status, outcome)."""
        status, payload = self.post("send_message", {
            "turn_id": str(uuid.uuid4()), "conversation_id": conversation, "text": text,
            "model": model}, timeout=120)
        outcome, conversation_id = None, None
        for text in payload.decode(errors="replace").splitlines():
            try:
                line = json.loads(text)
            except json.JSONDecodeError:
                continue
            if not isinstance(line, dict) or line.get("line") != "event":
                continue
            event = line["event"]
            if event["type"] == "started":
                conversation_id = event["conversation_id"]
            elif event["type"] == "finished":
                outcome = event
        return status, outcome, conversation_id


class Rill:
    """A Rill server of its own: a temporary directory, accounts mode, the fake as provider."""

    started = []  # every server, stopped at the end even when a measurement fails

    def __init__(self, binary, fake_url, extra=None, open_files=None):
        self.dir = tempfile.mkdtemp(prefix="rill-attack-")
        os.chmod(self.dir, 0o700)
        self.port = free_port()
        self.database = os.path.join(self.dir, "rill.db")
        prices = os.path.join(self.dir, "prices.toml")
        with open(prices, "w") as f:
            f.write(PRICES)
        self.env = dict(os.environ, LEPTOS_SITE_ADDR=f"127.0.0.1:{self.port}",
                        LEPTOS_SITE_ROOT=os.path.join(self.dir, "site"), RILL_DATABASE=self.database,
                        RILL_AUTH="accounts", RILL_OPENAI_COMPAT_URL=f"{fake_url}/v1",
                        RILL_OPENAI_COMPAT_NAME="fake", RILL_LOCAL_MODEL="off", RILL_CONFIG=prices,
                        RUST_LOG="warn")
        self.env.update(extra or {})
        self.binary = binary
        for name, admin in (("root", True), ("alice", False), ("bob", False), ("carol", False)):
            subprocess.run([binary, "user", "add"] + (["--admin"] if admin else []) + [name],
                           env=dict(self.env, RILL_NEW_PASSWORD=f"{name}-password"),
                           check=True, capture_output=True)
        command = [binary] if open_files is None else \
            ["sh", "-c", f'ulimit -n {open_files} && exec "$0"', binary]
        self.process = subprocess.Popen(command, env=self.env, stdout=subprocess.DEVNULL,
                                        stderr=subprocess.DEVNULL)
        Rill.started.append(self)
        deadline = time.time() + 30
        while True:
            try:
                if Client(self.port).request("GET", "/healthz", timeout=2)[0] == 200:
                    break
            except OSError:
                pass
            if time.time() > deadline:
                raise RuntimeError("Rill did not start")
            time.sleep(0.05)

    def pid(self):
        return self.process.pid

    def signed_in(self, name, source="127.0.0.1"):
        client = Client(self.port, source)
        status, _ = client.post("sign_in", {"username": name, "password": f"{name}-password"})
        assert status == 200, status
        return client

    def query(self, sql, *args):
        db = sqlite3.connect(f"file:{self.database}?mode=ro", uri=True)
        try:
            return db.execute(sql, args).fetchall()
        finally:
            db.close()

    def stop(self):
        if self.process.poll() is not None:
            return
        self.process.terminate()
        try:
            self.process.wait(20)
        except subprocess.TimeoutExpired:
            self.process.kill()


def fake_config(fake_port, **config):
    conn = http.client.HTTPConnection("127.0.0.1", fake_port, timeout=10)
    conn.request("POST", "/_fake/config", json.dumps(config), {"content-type": "application/json"})
    status = conn.getresponse().status
    conn.close()
    assert 200 <= status < 300, f"the fake refused its config: {status}"


def connect_from(source, port):
    s = socket.socket()
    s.bind((source, 0))
    s.connect(("127.0.0.1", port))
    return s


def still_open(sockets, wait):
    """How many of `sockets` the server has not closed within `wait` seconds of now."""
    deadline = time.time() + wait
    open_ = 0
    for s in sockets:
        s.settimeout(max(0.0, deadline - time.time()) or 0.001)
        try:
            if s.recv(4096) != b"":
                # An answer (a refusal) means the server is closing it.
                s.settimeout(2)
                while s.recv(4096):
                    pass
            continue
        except socket.timeout:
            open_ += 1
        except OSError:
            continue
    return open_


def slowloris(rill):
    sockets = []
    for i in range(200):
        s = connect_from(f"127.0.4.{i + 1}", rill.port)
        s.sendall(b"GET /healthz HTTP/1.1\r\nhost: 127.0.0.1\r\nx-slow: ")
        sockets.append(s)
    started = time.time()
    open_after = still_open(sockets, 20)
    print(f"  slowloris: 200 half-sent requests from 200 addresses; open after "
          f"{time.time() - started:.0f} s: {open_after}")
    for s in sockets:
        s.close()


def idle_with_few_files(binary, fake_url):
    rill = Rill(binary, fake_url, open_files=256)
    try:
        sockets = [connect_from("127.0.0.1", rill.port) for _ in range(260)]
        started = time.time()
        status, _ = Client(rill.port, "127.0.0.2").request("GET", "/healthz", timeout=5)
        took = (time.time() - started) * 1000
        kept = still_open(sockets, 5)
        print(f"  open files 256, 260 idle sockets from one address: /healthz from another "
              f"answered {status} in {took:.1f} ms; {kept} of the 260 kept by the server")
        time.sleep(16)
        print(f"  ... {still_open(sockets, 1)} still open 21 s later (header timeout 15 s)")
        for s in sockets:
            s.close()
    finally:
        rill.stop()


def streams(rill):
    alice = rill.signed_in("alice")
    _, _, conversation = alice.turn("Hello")

    def follow(i):
        s = connect_from(f"127.0.5.{i // 200 + 1}", rill.port)
        body = json.dumps({"conversation_id": conversation, "from_turn": None}).encode()
        cookie = "; ".join(f"{k}={v}" for k, v in alice.cookies.items())
        s.sendall(b"POST /api/conversation_events HTTP/1.1\r\nhost: 127.0.0.1\r\n"
                  b"content-type: application/json\r\ncookie: " + cookie.encode() +
                  b"\r\ncontent-length: " + str(len(body)).encode() + b"\r\n\r\n" + body)
        s.settimeout(10)
        head = s.recv(64)
        return s, head.split(b" ")[1] if head.startswith(b"HTTP/1.1") else b"closed"

    opened = [follow(i) for i in range(300)]
    counts = {}
    for _, status in opened:
        counts[status.decode()] = counts.get(status.decode(), 0) + 1
    print(f"  one person opens 300 event streams: {counts}")
    for s, _ in opened:
        s.close()


def table_bomb(rill, fake_port):
    table = "|" + "a|" * 512 + "\n|" + "-|" * 512 + "\n" + "x\n" * 500
    bomb = "\n".join([table] * 128)
    script = [bomb[i:i + 4096] for i in range(0, len(bomb), 4096)]
    fake_config(fake_port, tokens=len(script), script=script, token_delay_ms=0)
    bob = rill.signed_in("bob")
    _, outcome, conversation = bob.turn("Tables, please")
    before, _ = memory_mib(rill.pid())
    started = time.time()
    status, payload = bob.post("get_conversation", {"id": conversation}, timeout=120)
    took = time.time() - started
    after, peak = memory_mib(rill.pid())
    print(f"  table bomb ({len(bomb):,} bytes, {outcome and outcome.get('status')}): opened "
          f"{status} in {took * 1000:.0f} ms as {len(payload):,} bytes; resident {before} -> "
          f"{after} MiB (peak so far {peak} MiB)")
    fake_config(fake_port, tokens=24, token_delay_ms=5)


def budget_race(rill, fake_port):
    root = rill.signed_in("root")
    users = json.loads(root.post("admin_overview")[1])["users"]
    carol = next(u["id"] for u in users if u["username"] == "carol")
    root.post("set_user_budget", {"user_id": carol, "monthly_budget_usd": 0.50})
    fake_config(fake_port, tokens=100, token_delay_ms=5)
    client = rill.signed_in("carol", "127.0.6.1")
    with futures.ThreadPoolExecutor(8) as pool:
        turns = list(pool.map(lambda i: client.turn(f"Question {i}"), range(8)))
    outcomes = [outcome for status, outcome, _ in turns if status == 200]
    spent = sum((o or {}).get("cost_usd") or 0 for o in outcomes)
    answered = sum(1 for o in outcomes if o and o["status"] == "complete")
    over_budget = sum(1 for o in outcomes if o and o["status"] == "failed")
    too_many = sum(1 for status, _, _ in turns if status == 429)
    print(f"  8 sends at once into a $0.50 budget, $0.20 a reply: {answered} answered, "
          f"{over_budget} refused over budget, {too_many} refused as too many at once; "
          f"spent ${spent:.4f}")
    fake_config(fake_port, tokens=24, token_delay_ms=5)


def revision_flood(rill):
    alice = rill.signed_in("alice", "127.0.7.1")
    _, _, conversation = alice.turn("Hello again")
    prompts = ["🦀" * 16_000, "🌊" * 16_000]
    statuses = {}
    started = time.time()
    n = 0
    while time.time() - started < 20 and n < 10_000:
        status, _ = alice.post("set_system_prompt",
                               {"id": conversation, "system_prompt": prompts[n % 2]})
        statuses[status] = statuses.get(status, 0) + 1
        n += 1
    kept, size = rill.query(
        "SELECT COUNT(*), COALESCE(SUM(length(CAST(text AS BLOB))), 0) FROM system_prompts "
        "WHERE conversation_id = ?", conversation)[0]
    _, payload = alice.post("get_conversation", {"id": conversation})
    print(f"  20 s of system prompt changes (64 KB each): {statuses}; {kept} revisions kept "
          f"({size:,} bytes); the conversation opens as {len(payload):,} bytes")


def lockout(rill):
    owner_browser = rill.signed_in("alice", "127.0.8.1")
    owner_browser.post("sign_out")
    for i in range(12):
        guesser = Client(rill.port, f"127.0.9.{i + 1}")
        for _ in range(5):
            guesser.post("sign_in", {"username": "alice", "password": "guess"})
    stranger, _ = Client(rill.port, "127.0.10.1").post(
        "sign_in", {"username": "alice", "password": "alice-password"})
    own, _ = owner_browser.post("sign_in", {"username": "alice", "password": "alice-password"})
    root = rill.signed_in("root", "127.0.8.2")
    lockouts = json.loads(root.post("admin_overview")[1])["lockouts"]
    audit = rill.query("SELECT COUNT(*), SUM(count) FROM audit_log WHERE action = 'sign-in failed'")
    print(f"  60 wrong guesses from 12 addresses: the owner's own browser signs in {own}, a new "
          f"browser {stranger}; admins see {[(l['username'], l['failures']) for l in lockouts]}; "
          f"audit rows {audit[0][0]} for {audit[0][1]} failures")


def argon2_burst(rill):
    before, _ = memory_mib(rill.pid())

    def attempt(i):
        return Client(rill.port, f"127.0.11.{i + 1}").post(
            "sign_in", {"username": f"someone{i}", "password": "a guess"})[0]

    with futures.ThreadPoolExecutor(100) as pool:
        statuses = list(pool.map(attempt, range(100)))
    after, peak = memory_mib(rill.pid())
    time.sleep(5)
    later, _ = memory_mib(rill.pid())
    counts = {s: statuses.count(s) for s in set(statuses)}
    print(f"  100 failed sign-ins at once: {counts}; resident {before} MiB before, {after} right "
          f"after (peak so far {peak}), {later} 5 s later")


def local_share(binary, fake_url):
    """Alice sends nine at once to the built-in model; Bob and Carol one each a moment later."""
    model = os.path.abspath("models/SmolLM2-135M-Instruct.Q4_1.gguf")
    rill = Rill(binary, fake_url, extra={"RILL_LOCAL_MODEL": model, "RILL_LOCAL_MAX_TOKENS": "32"})
    try:
        people = {name: rill.signed_in(name, f"127.0.13.{i + 1}")
                  for i, name in enumerate(("alice", "bob", "carol"))}
        finished = []

        def ask(name, delay):
            time.sleep(delay)
            http_status, outcome, _ = people[name].turn("Say hello.", model="local/smollm2-135m")
            status = (outcome or {}).get("status") if http_status == 200 else str(http_status)
            finished.append((name, status))
            return name, status

        jobs = [("alice", 0.0)] * 9 + [("bob", 0.3), ("carol", 0.3)]
        with futures.ThreadPoolExecutor(len(jobs)) as pool:
            outcomes = list(pool.map(lambda job: ask(*job), jobs))
        alice = [status for name, status in outcomes if name == "alice"]
        served = [name for name, status in finished if status == "complete"]
        print(f"  built-in model, queue 8: Alice sends 9 at once: {alice.count('complete')} "
              f"answered, {alice.count('failed')} refused as the built-in model's queue share, "
              f"{alice.count('429')} as too many at once; Bob and Carol a moment later: "
              f"{[status for name, status in outcomes if name != 'alice']}; answered in the "
              f"order {served}")
    finally:
        rill.stop()


def files_at_rest(rill):
    modes = {name: oct(os.stat(os.path.join(rill.dir, name)).st_mode & 0o777)
             for name in os.listdir(rill.dir) if name.startswith("rill.db")}
    bob = rill.signed_in("bob", "127.0.12.1")
    cookie = bob.cookies.get("rill_session", "")
    stored = [row[0] for row in rill.query("SELECT id FROM tower_sessions")]
    print(f"  files: directory {oct(os.stat(rill.dir).st_mode & 0o777)}, {modes}; the cookie "
          f"{'is' if cookie in stored else 'is not'} a key of the session table")
    rill.stop()
    wal = os.path.join(rill.dir, "rill.db-wal")
    size = os.path.getsize(wal) if os.path.exists(wal) else 0
    print(f"  after SIGTERM the WAL holds {size} bytes")


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--rill", default="target/release/rill")
    parser.add_argument("--fake", default="target/debug/fake-provider")
    args = parser.parse_args()
    fake_port = free_port()
    fake = subprocess.Popen([args.fake, "--port", str(fake_port), "--tokens", "24", "--delay-ms", "5"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    fake_url = f"http://127.0.0.1:{fake_port}"
    time.sleep(0.5)
    try:
        print("connections")
        # Replies capped at 100 tokens: at these prices a reply costs at most about $0.20.
        rill = Rill(args.rill, fake_url, extra={"RILL_MAX_OUTPUT_TOKENS": "100"})
        slowloris(rill)
        idle_with_few_files(args.rill, fake_url)
        streams(rill)
        print("rendering")
        table_bomb(rill, fake_port)
        print("budgets")
        budget_race(rill, fake_port)
        print("quotas")
        revision_flood(rill)
        print("sign-in")
        lockout(rill)
        argon2_burst(rill)
        print("built-in model")
        local_share(args.rill, fake_url)
        print("at rest")
        files_at_rest(rill)
    finally:
        for rill in Rill.started:
            rill.stop()
        fake.terminate()


if __name__ == "__main__":
    main()
