"""`animevae demo` under load, for real: 16 gradio_client clients at once for a bounded number of requests, while
hostile uploads (a decompression bomb, a 50 MB file, a non-image) arrive. Every request is answered (fewer wait
at once than the bounded queue holds), each hostile upload is refused with the demo's own message, the server
never crashes, its memory stays bounded, and it reports its throughput and latency. Past the queue's bound,
requests are refused with the queue's message, and only those."""

from __future__ import annotations

import io
import os
import socket
import statistics
import subprocess
import sys
import threading
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor

import pytest

CLIENTS, REQUESTS_EACH = 16, 5
PEAK_RSS_LIMIT_MB = 2500


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def rss_mb(pid: int) -> float:
    for line in open(f"/proc/{pid}/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


@pytest.fixture(scope="module")
def server(tiny_run, tmp_path_factory):
    port = free_port()
    log = tmp_path_factory.mktemp("demo-load") / "demo.log"
    env = {**os.environ, "GRADIO_ANALYTICS_ENABLED": "False", "NO_PROXY": "127.0.0.1,localhost"}
    with open(log, "w") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "animevae", "demo", "--run", str(tiny_run), "--port", str(port)], stdout=out, stderr=subprocess.STDOUT, env=env
        )
    url = f"http://127.0.0.1:{port}/"
    end = time.monotonic() + 240
    while True:
        assert proc.poll() is None, log.read_text()[-3000:]
        try:
            urllib.request.urlopen(url, timeout=2)
            break
        except OSError:
            assert time.monotonic() < end, log.read_text()[-3000:]
            time.sleep(0.5)
    yield url, proc, log
    proc.terminate()
    proc.wait(timeout=30)


def hostile_files(folder):
    from PIL import Image

    bomb = io.BytesIO()
    Image.new("1", (30000, 30000)).save(bomb, "PNG")  # 900 megapixels in a few hundred kB
    (folder / "bomb.png").write_bytes(bomb.getvalue())
    (folder / "big.png").write_bytes(os.urandom(50 * 1000 * 1000))
    (folder / "notes.png").write_text("not an image at all")
    return [folder / "bomb.png", folder / "big.png", folder / "notes.png"]


def test_sixteen_clients_and_hostile_uploads(server, tmp_path, capsys):
    from gradio_client import Client, handle_file
    from gradio_client.exceptions import AppError

    from animevae.demo import MAX_UPLOAD_BYTES, QUEUE_SIZE

    url, proc, log = server
    hostile = hostile_files(tmp_path)
    assert CLIENTS + len(hostile) < QUEUE_SIZE  # one request per client at a time: the bounded queue never fills
    peak, stop = [rss_mb(proc.pid)], threading.Event()

    def watch():
        while not stop.is_set():
            peak.append(rss_mb(proc.pid))
            time.sleep(0.05)

    def one_client(i: int) -> list[tuple[str, float, str]]:
        client = Client(url, verbose=False)
        results = []
        for r in range(REQUESTS_EACH):
            t = time.perf_counter()
            try:
                client.predict("mix", 16, i * 100 + r, 2, 1.0, api_name="/generate")
                results.append(("answered", time.perf_counter() - t, ""))
            except Exception as e:  # nothing may fail here: not the server, not the transport
                results.append(("failed", time.perf_counter() - t, f"{type(e).__name__}: {e}"))
        return results

    def one_hostile(path) -> str:
        client = Client(url, verbose=False)
        if path.stat().st_size > MAX_UPLOAD_BYTES:  # gradio_client refuses it before sending: send it anyway, as a script could
            import httpx

            with open(path, "rb") as f:
                r = httpx.post(client.upload_url, files=[("files", (path.name, f))], timeout=300)
            return f"HTTP {r.status_code}: {r.text[:200]}"
        try:
            client.predict(handle_file(str(path)), api_name="/reconstruct")
        except AppError as e:  # the demo's gr.Error: its one-line message
            return str(e)
        return "answered"

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    start = time.perf_counter()
    with ThreadPoolExecutor(CLIENTS + len(hostile)) as pool:
        load = [pool.submit(one_client, i) for i in range(CLIENTS)]
        refusals = [pool.submit(one_hostile, p) for p in hostile]
        results = [r for f in load for r in f.result()]
        hostile_messages = [f.result() for f in refusals]
    wall = time.perf_counter() - start
    stop.set()
    watcher.join()

    assert len(results) == CLIENTS * REQUESTS_EACH
    answered = [t for kind, t, _ in results if kind == "answered"]
    failed = [msg for kind, _, msg in results if kind != "answered"]
    assert not failed and len(answered) == CLIENTS * REQUESTS_EACH, failed[:5]  # every request answered
    bomb, big, notes = hostile_messages
    assert bomb.startswith("bomb.png has far too many pixels"), bomb
    assert big.startswith("HTTP 413"), big  # the demo's 10 MB limit, enforced by the server
    assert notes.startswith("notes.png is not an image this demo can read"), notes
    assert proc.poll() is None, log.read_text()[-3000:]  # no crash
    assert "Traceback" not in log.read_text()
    assert max(peak) < PEAK_RSS_LIMIT_MB
    # the demo still works after the storm
    Client(url, verbose=False).predict("prior", 4, 0, 2, 1.0, api_name="/generate")
    p50, p95 = statistics.median(answered), sorted(answered)[int(0.95 * (len(answered) - 1))]
    with capsys.disabled():
        print(
            f"\ndemo under load: {len(answered)} answered of {len(results)} in {wall:.1f} s "
            f"({len(answered) / wall:.1f} requests/s), p50 {p50:.2f} s, p95 {p95:.2f} s, "
            f"server peak RSS {max(peak):.0f} MB; hostile uploads: {[m[:60] for m in hostile_messages]}"
        )


def test_the_queue_is_bounded_and_says_so(server):
    from gradio_client import Client
    from gradio_client.utils import QueueError

    from animevae.demo import QUEUE_SIZE

    url, proc, _ = server
    client = Client(url, verbose=False)
    jobs = [client.submit("mix", 64, i, 2, 1.0, api_name="/generate") for i in range(3 * QUEUE_SIZE)]
    answered, refused, failed = 0, [], []
    for job in jobs:
        try:
            job.result(timeout=300)
            answered += 1
        except QueueError as e:  # the bounded queue's refusal
            refused.append(str(e))
        except Exception as e:
            failed.append(f"{type(e).__name__}: {e}")
    assert not failed, failed[:3]
    assert answered + len(refused) == 3 * QUEUE_SIZE
    assert refused and all("Queue is full" in m for m in refused), refused[:3]
    assert QUEUE_SIZE <= answered < 3 * QUEUE_SIZE
    assert proc.poll() is None
