"""test_remote_timeouts.py: the remote upstream's time limits hold and say which one fired
(issue 14): a server that accepts the connection and never answers fails on the idle timeout
(not blamed on the connect timeout), a server that drips one byte every 2 s fails on the total
deadline (--total-timeout-ms, retries included), both on the model list at start and in the
middle of a generation; `salign serve` in front of such an upstream answers 502 with the reason.
Fake servers in Python on loopback; no model is loaded."""
import json
import os
import re
import socket
import socketserver
import subprocess
import sys
import threading
import time
import urllib.request

sys.path.insert(0, os.path.dirname(__file__))
from harness import SALIGN, main, test  # noqa: E402

MODELS = b'{"object": "list", "data": [{"id": "fake", "object": "model"}]}'


class Handler(socketserver.BaseRequestHandler):
    def handle(self):
        mode = self.server.mode
        s = self.request
        s.settimeout(60)
        try:
            data = b""
            while b"\r\n\r\n" not in data:
                chunk = s.recv(65536)
                if not chunk:
                    return
                data += chunk
            line = data.split(b"\r\n", 1)[0].decode()
            if mode == "garbage" and line.startswith("POST"):
                s.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nConnection: close\r\n\r\n"
                          b"data: {not json at all\n\n")
                return
            if mode == "silent":
                time.sleep(60)  # accepted, never answered (the client gives up first)
                return
            if mode == "drip" or (mode == "drip_post" and line.startswith("POST")):
                head = (b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n\r\n" if mode == "drip_post"
                        else b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 100000\r\n\r\n")
                s.sendall(head)
                while True:  # one byte every 2 s, never a whole event
                    s.sendall(b":" if mode == "drip_post" else b" ")
                    time.sleep(2)
            s.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n"
                      b"Connection: close\r\n\r\n" % len(MODELS) + MODELS)
        except (OSError, socket.timeout):
            return


def fake(mode):
    socketserver.ThreadingTCPServer.allow_reuse_address = True
    srv = socketserver.ThreadingTCPServer(("127.0.0.1", 0), Handler)
    srv.daemon_threads = True
    srv.mode = mode
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    return srv, "http://127.0.0.1:%d/v1" % srv.server_address[1]


def align(url, *extra):
    t0 = time.time()
    p = subprocess.run([SALIGN, "align", "--upstream", url, "--upstream-template", "chatml", "--mode", "upstream",
                        "-p", "hi"] + list(extra), capture_output=True, timeout=120)
    return p.returncode, p.stderr.decode(), time.time() - t0


@test
def test_silent_server_fails_on_idle_not_connect():
    srv, url = fake("silent")
    rc, err, dt = align(url, "--timeout-ms", "1000", "--total-timeout-ms", "60000")
    srv.shutdown()
    assert rc == 1, (rc, err)
    assert "idle_timeout_ms" in err and "connect_timeout_ms" not in err, err
    assert "attempts" not in err, err  # a hang is not retried: each try would cost the idle timeout
    assert dt < 5, (dt, err)


@test
def test_dripping_model_list_fails_on_total_deadline():
    srv, url = fake("drip")
    rc, err, dt = align(url, "--timeout-ms", "3000", "--total-timeout-ms", "4000")
    srv.shutdown()
    assert rc == 1, (rc, err)
    assert "total_timeout_ms" in err and "idle_timeout_ms" not in err, err
    assert dt < 9, (dt, err)


@test
def test_dripping_generation_fails_on_total_deadline():
    srv, url = fake("drip_post")
    rc, err, dt = align(url, "--timeout-ms", "3000", "--total-timeout-ms", "4000")
    srv.shutdown()
    assert rc == 1, (rc, err)
    assert "deadline" in err and "total_timeout_ms" in err, err
    assert dt < 9, (dt, err)


@test
def test_serve_in_front_of_a_hanging_upstream_answers_502():
    srv, url = fake("drip_post")
    p = subprocess.Popen([SALIGN, "serve", "--upstream", url, "--upstream-template", "chatml", "--port", "0",
                          "--timeout-ms", "3000", "--total-timeout-ms", "3000"], stderr=subprocess.PIPE, text=True)
    try:
        port = None
        for line in p.stderr:
            m = re.search(r"listening on http://127\.0\.0\.1:(\d+)", line)
            if m:
                port = int(m.group(1))
                break
        assert port, "the server did not start"
        threading.Thread(target=lambda: [None for _ in p.stderr], daemon=True).start()
        body = json.dumps({"model": "stream-aligner:upstream", "messages": [{"role": "user", "content": "hi"}]})
        req = urllib.request.Request("http://127.0.0.1:%d/v1/chat/completions" % port, data=body.encode(),
                                     headers={"Content-Type": "application/json"})
        t0 = time.time()
        try:
            urllib.request.urlopen(req, timeout=60)
            raise AssertionError("no error from a hanging upstream")
        except urllib.error.HTTPError as e:
            assert e.code == 502, e.code
            err = json.loads(e.read())["error"]
            assert err["type"] == "upstream_error" and "total_timeout_ms" in err["message"], err
        assert time.time() - t0 < 8, time.time() - t0
    finally:
        p.terminate()
        p.wait(timeout=30)
        srv.shutdown()


def serve_port(p):
    for line in p.stderr:
        m = re.search(r"listening on http://127\.0\.0\.1:(\d+)", line)
        if m:
            threading.Thread(target=lambda: [None for _ in p.stderr], daemon=True).start()
            return int(m.group(1))
    raise AssertionError("the server did not start")


def post_error(port, body):
    req = urllib.request.Request("http://127.0.0.1:%d/v1/chat/completions" % port, data=json.dumps(body).encode(),
                                 headers={"Content-Type": "application/json"})
    try:
        urllib.request.urlopen(req, timeout=60)
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())["error"]
    raise AssertionError("no error")


@test
def test_serve_upstream_garbage_then_down_answers_502():
    srv, url = fake("garbage")
    p = subprocess.Popen([SALIGN, "serve", "--upstream", url, "--upstream-template", "chatml", "--port", "0",
                          "--retries", "1"], stderr=subprocess.PIPE, text=True)
    try:
        port = serve_port(p)
        body = {"model": "stream-aligner:upstream", "messages": [{"role": "user", "content": "hi"}]}
        code, err = post_error(port, body)
        assert code == 502 and err["type"] == "upstream_error", (code, err)
        srv.shutdown()
        srv.server_close()  # the upstream is down now
        code, err = post_error(port, body)
        assert code == 502 and "cannot connect" in err["message"], (code, err)
        # the server itself is still fine
        assert json.loads(urllib.request.urlopen("http://127.0.0.1:%d/health" % port).read())["status"] == "ok"
    finally:
        p.terminate()
        assert p.wait(timeout=30) == 0


@test
def test_serve_request_timeout_answers_504():
    srv, url = fake("drip_post")
    p = subprocess.Popen([SALIGN, "serve", "--upstream", url, "--upstream-template", "chatml", "--port", "0",
                          "--request-timeout-ms", "1500"], stderr=subprocess.PIPE, text=True)
    try:
        port = None
        for line in p.stderr:
            m = re.search(r"listening on http://127\.0\.0\.1:(\d+)", line)
            if m:
                port = int(m.group(1))
                break
        assert port, "the server did not start"
        threading.Thread(target=lambda: [None for _ in p.stderr], daemon=True).start()
        body = json.dumps({"model": "stream-aligner:upstream", "prompt": "hi"})
        req = urllib.request.Request("http://127.0.0.1:%d/v1/completions" % port, data=body.encode(),
                                     headers={"Content-Type": "application/json"})
        t0 = time.time()
        try:
            urllib.request.urlopen(req, timeout=60)
            raise AssertionError("no error past the request timeout")
        except urllib.error.HTTPError as e:
            assert e.code == 504, e.code
            assert json.loads(e.read())["error"]["code"] == "timeout"
        assert time.time() - t0 < 5, time.time() - t0
    finally:
        p.terminate()
        p.wait(timeout=30)
        srv.shutdown()


if __name__ == "__main__":
    main()
