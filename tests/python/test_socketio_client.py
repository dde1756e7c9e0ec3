"""Interop: python-socketio's client against tidewire's `sio-test-server`.

Covers connect (and a refused connect), events with acks both ways, binary,
and a room broadcast, each over long-polling only and over WebSocket only.
The server's behaviour is documented in examples/sio_test_server/main.rs.

Run (from the repo root, after `cargo build -p tidewire-examples`):
    python3 -m venv /tmp/venv && /tmp/venv/bin/pip install -r tests/python/requirements.txt
    /tmp/venv/bin/pytest tests/python
Variables: CARGO_TARGET_DIR (where the binary was built, default <repo>/target),
SIO_TEST_SERVER_BIN (another server following the same contract).
"""

import os
import pathlib
import queue
import subprocess
import threading
import time
import uuid

import pytest
import socketio

REPO = pathlib.Path(__file__).resolve().parents[2]
TARGET = pathlib.Path(os.environ.get("CARGO_TARGET_DIR", REPO / "target")).resolve()
SERVER_BIN = os.environ.get("SIO_TEST_SERVER_BIN", str(TARGET / "debug" / "sio-test-server"))
TRANSPORTS = [["polling"], ["websocket"]]
TIMEOUT = 5


@pytest.fixture(scope="module")
def url():
    if not os.path.exists(SERVER_BIN):
        pytest.fail(f"server binary not found: {SERVER_BIN}; build it with `cargo build -p tidewire-examples`")
    env = {**os.environ, "HOST": "127.0.0.1", "PORT": "0", "RUST_LOG": os.environ.get("RUST_LOG", "warn")}
    proc = subprocess.Popen([SERVER_BIN], env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    lines = queue.Queue()
    threading.Thread(target=lambda: [lines.put(line) for line in proc.stdout], daemon=True).start()
    try:
        deadline = time.monotonic() + 10
        while True:
            line = lines.get(timeout=max(0.1, deadline - time.monotonic())).strip()
            if line.startswith("listening on http://"):
                yield line[len("listening on "):].rstrip("/")
                break
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()


def client(url, transports, namespace="/", auth=None):
    sio = socketio.Client(reconnection=False)
    events = queue.Queue()
    sio.on("welcome", lambda data: events.put(("welcome", data)), namespace=namespace)
    sio.connect(url, transports=transports, namespaces=[namespace], auth=auth, wait_timeout=TIMEOUT)
    return sio, events


@pytest.mark.parametrize("transports", TRANSPORTS, ids=lambda t: t[0])
def test_connect_and_welcome(url, transports):
    sio, events = client(url, transports)
    try:
        assert sio.connected
        assert sio.transport() == transports[0]
        kind, welcome = events.get(timeout=TIMEOUT)
        assert kind == "welcome"
        assert welcome["id"] == sio.get_sid("/")
        assert welcome["ns"] == "/"
    finally:
        sio.disconnect()


@pytest.mark.parametrize("transports", TRANSPORTS, ids=lambda t: t[0])
def test_refused_connect(url, transports):
    sio = socketio.Client(reconnection=False)
    errors = []
    sio.on("connect_error", errors.append, namespace="/admin")
    with pytest.raises(socketio.exceptions.ConnectionError):
        sio.connect(url, transports=transports, namespaces=["/admin"], auth={"token": "wrong"}, wait_timeout=TIMEOUT)
    assert errors == [{"message": "unauthorized", "data": {"reason": "bad token"}}]
    admin, _ = client(url, transports, namespace="/admin", auth={"token": "secret", "user": "py"})
    try:
        assert admin.call("whoami", namespace="/admin", timeout=TIMEOUT) == {"ns": "/admin", "user": "py"}
    finally:
        admin.disconnect()


@pytest.mark.parametrize("transports", TRANSPORTS, ids=lambda t: t[0])
def test_events_with_acks(url, transports):
    sio, _ = client(url, transports)
    try:
        # client -> server, one argument and several
        assert sio.call("echo", {"a": [1, 2]}, timeout=TIMEOUT) == {"a": [1, 2]}
        assert sio.call("echo", (1, "two", None), timeout=TIMEOUT) == (1, "two", None)
        assert sio.call("typed", {"a": 9}, timeout=TIMEOUT) == 10
        # binary both ways
        info, body = sio.call("upload", {"name": "f.bin", "body": b"\x00\x01\x02"}, timeout=TIMEOUT)
        assert info == {"name": "f.bin", "size": 3}
        assert body == b"\x00\x01\x02"
        # server -> client, answered by this client's handler
        sio.on("question", lambda q: f"{q}!")
        assert sio.call("ask", {"event": "question", "data": "why", "timeoutMs": 2000}, timeout=TIMEOUT) == {"ok": "why!"}
    finally:
        sio.disconnect()


@pytest.mark.parametrize("transports", TRANSPORTS, ids=lambda t: t[0])
def test_room_broadcast(url, transports):
    room = f"py-{uuid.uuid4().hex[:8]}"
    clients = [client(url, transports) for _ in range(3)]
    received = [queue.Queue() for _ in clients]
    try:
        for (sio, _), got in zip(clients, received):
            sio.on("news", lambda data, got=got: got.put(data))
            rooms = sio.call("join", room, timeout=TIMEOUT)
            assert room in rooms
        sender = clients[0][0]
        assert sender.call("to-room", {"room": room, "event": "news", "data": {"n": 1}}, timeout=TIMEOUT) == "sent"
        assert received[1].get(timeout=TIMEOUT) == {"n": 1}
        assert received[2].get(timeout=TIMEOUT) == {"n": 1}
        time.sleep(0.2)
        assert received[0].empty(), "the sender is excluded"
        assert sender.call("count", room, timeout=TIMEOUT) == 3
    finally:
        for sio, _ in clients:
            sio.disconnect()
