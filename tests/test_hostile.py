"""Hostile input against a real ``clipforge serve`` (uvicorn subprocess on loopback, SQLite index, API key): every
case of the table gets a 4xx JSON error or a correct answer, never a 5xx, never a traceback in the server's
log, never a hang; the server answers /healthz between groups; its memory after 2,000 requests stays within
10% of its memory after the first 200."""

from __future__ import annotations

import base64
import io
import json
import select
import socket
import struct
import time
import zlib
from dataclasses import dataclass, field

import numpy as np
import pytest

pytest.importorskip("fastapi")
pytest.importorskip("uvicorn")

from clipforge.testing.server import ServerProcess, multipart, request  # noqa: E402

pytestmark = pytest.mark.slow

KEY = "hostile-test-key"
AUTH = {"Authorization": f"Bearer {KEY}"}
TIMEOUT_S = 15.0  # per request: a hang fails the case by name
READ_TIMEOUT_S = 2  # the server's --read-timeout, for the slow-body cases
MAX_BODY_MB = 2


# --- payloads --------------------------------------------------------------------------------------------
def png(width: int, height: int, color=(10, 200, 30)) -> bytes:
    from PIL import Image

    out = io.BytesIO()
    Image.new("RGB", (width, height), color).save(out, "PNG")
    return out.getvalue()


def png_claiming(width: int, height: int) -> bytes:
    """A 16x16 PNG whose IHDR claims width x height (valid CRC); the pixels are never there."""
    data = bytearray(png(16, 16))
    data[16:24] = struct.pack(">II", width, height)
    data[29:33] = struct.pack(">I", zlib.crc32(bytes(data[12:29])) & 0xFFFFFFFF)
    return bytes(data)


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


PNG = png(32, 32)
JPEG_TRUNCATED = b"\xff\xd8\xff\xe0\x00\x10JFIF\x00" + b"\x00" * 20
POLYGLOT = PNG + b"<html><script>alert(1)</script></html>"  # a valid PNG with HTML after IEND
HTML_WITH_PNG_MAGIC = b"\x89PNG\r\n\x1a\n<html><body>not really</body></html>"
DEEP = "[" * 100_000 + "]" * 100_000


@dataclass
class Case:
    """One request and what must come back: ``status`` (one code or a tuple of acceptable ones) and, for a 4xx,
    the error's ``field`` when it is fixed."""

    name: str
    method: str
    path: str
    json: object = None
    data: bytes | None = None
    headers: dict = field(default_factory=dict)
    status: int | tuple = 200
    field: str | None = None
    auth: bool = True
    check: object = None  # extra check of the parsed JSON answer
    heavy: bool = False  # left out of the 2,000-request memory loop


def js(name, path, body, status=200, field=None, **kw) -> Case:
    return Case(name, "POST", path, json=body, status=status, field=field, **kw)


def raw(name, path, data: bytes | str, status=200, field=None, kind="application/json", **kw) -> Case:
    data = data.encode() if isinstance(data, str) else data
    return Case(name, "POST", path, data=data, headers={"Content-Type": kind}, status=status, field=field, **kw)


def form(name, fields, status, field=None, **kw) -> Case:
    body, kind = multipart(fields)
    return Case(
        name, "POST", "/v1/classify", data=body, headers={"Content-Type": kind}, status=status, field=field, **kw
    )


def get(name, path, status, field=None, **kw) -> Case:
    return Case(name, "GET", path, status=status, field=field, **kw)


def embeds(n: int):
    def check(answer):
        assert len(answer["data"]) == n and all(len(d["embedding"]) > 8 for d in answer["data"])
        assert all(abs(np.linalg.norm(d["embedding"]) - 1) < 1e-3 for d in answer["data"])

    return check


def base64_unit_vector(answer):
    vector = np.frombuffer(base64.b64decode(answer["data"][0]["embedding"]), dtype="<f4")
    assert vector.size > 8 and abs(np.linalg.norm(vector) - 1) < 1e-3


def hits(answer):
    assert answer["results"] and all(r["image_url"].startswith("/v1/images/") for r in answer["results"])


def ranked(n_labels: int):
    def check(answer):
        row = answer["results"][0]
        assert len(row) == n_labels and abs(sum(r["score"] for r in row) - 1) < 1e-3

    return check


E, C, S = "/v1/embeddings", "/v1/classify", "/v1/search"
IMG = b64(PNG)
GROUPS: dict[str, list[Case]] = {
    "malformed json": [
        raw("truncated object", E, '{"input": [', 400, "body"),
        raw("empty body", E, "", 422),
        raw("bare null", E, "null", 422),
        raw("bare string", S, '"text"', 422),
        raw("trailing garbage", S, '{"text": "a"} xyz', 400, "body"),
        raw("single quotes", C, "{'images': []}", 400, "body"),
        raw("deep arrays", E, DEEP, 400, "body"),
        raw("deep objects", S, '{"a":' * 50_000 + "1" + "}" * 50_000, 400, "body"),
        raw("deep inside a field", C, '{"images": ' + DEEP + ', "labels": ["a"]}', 400, "body"),
        raw("not utf-8", E, b'{"input": ["caf\xe9"]}', 400, "body"),
        raw("utf-16 body", E, '{"input": ["x"]}'.encode("utf-16"), 400, "body"),
        raw("5000-digit number", S, '{"text": "a", "k": ' + "9" * 5000 + "}", 400, "body"),
        raw("json as text/plain", E, '{"input": ["x"]}', 415, "Content-Type", kind="text/plain"),
        raw("no content type", C, '{"images": []}', 415, "Content-Type", kind=""),
    ],
    "wrong types": [
        js("input a number", E, {"input": 123}, 422, "input"),
        js("input list of numbers", E, {"input": [1, 2]}, 422),
        js("input an object", E, {"input": {"a": 1}}, 422, "input"),
        js("labels a string", C, {"images": [IMG], "labels": "cat"}, 422, "labels"),
        js("images a string", C, {"images": IMG, "labels": ["a"]}, 422, "images"),
        js("labels null", C, {"images": [IMG], "labels": None}, 422, "labels"),
        js("k a string", S, {"text": "a", "k": "five"}, 422, "k"),
        js("k a fraction", S, {"text": "a", "k": 1.5}, 422, "k"),
        js("text a list", S, {"text": ["a"]}, 422, "text"),
        js("modality wrong", E, {"input": ["x"], "modality": "audio"}, 422, "modality"),
    ],
    "numbers": [
        js("k negative", S, {"text": "a", "k": -1}, 422, "k"),
        js("k huge", S, {"text": "a", "k": 10**30}, 422, "k"),
        js("k a million", S, {"text": "a", "k": 1_000_000}, 422, "k"),
        raw("k NaN", S, '{"text": "a", "k": NaN}', 422, "k"),
        raw("k Infinity", S, '{"text": "a", "k": Infinity}', 422, "k"),
        raw("min_score NaN", S, '{"text": "a", "min_score": NaN}', 422, "min_score"),
        raw("min_score -Infinity", S, '{"text": "a", "min_score": -Infinity}', 422, "min_score"),
        js("top_k negative", C, {"images": [IMG], "labels": ["a", "b"], "top_k": -3}, 422, "top_k"),
        js("top_k huge", C, {"images": [IMG], "labels": ["a", "b"], "top_k": 10**30}, check=ranked(2)),
        form(
            "multipart top_k superscript",
            [("images", ("a.png", PNG)), ("labels", "a,b"), ("top_k", "\u00b2")],
            422,
            "top_k",
        ),
        form(
            "multipart top_k 5000 digits",
            [("images", ("a.png", PNG)), ("labels", "a,b"), ("top_k", "7" * 5000)],
            422,
            "top_k",
        ),
        form(
            "multipart top_k negative", [("images", ("a.png", PNG)), ("labels", "a,b"), ("top_k", "-1")], 422, "top_k"
        ),
    ],
    "labels and templates": [
        js("10000 labels", C, {"images": [IMG], "labels": [f"l{i}" for i in range(10_000)]}, 413, "labels"),
        js("1 MB label", C, {"images": [IMG], "labels": ["x" * 1_000_000]}, 422, "labels[0]"),
        js(
            "1 MB template",
            C,
            {"images": [IMG], "labels": ["a"], "templates": "{}" + "x" * 1_000_000},
            422,
            "templates[0]",
        ),
        js(
            "template two placeholders",
            C,
            {"images": [IMG], "labels": ["a"], "templates": "{} and {}"},
            422,
            "templates",
        ),
        js(
            "template attribute",
            C,
            {"images": [IMG], "labels": ["a"], "templates": "{0.__class__} {}"},
            422,
            "templates",
        ),
        js("template named field", C, {"images": [IMG], "labels": ["a"], "templates": "{label}"}, 422, "templates"),
        js(
            "template format spec", C, {"images": [IMG], "labels": ["a"], "templates": "{:>99999999}"}, 422, "templates"
        ),
        js(
            "template escaped braces",
            C,
            {"images": [IMG], "labels": ["a", "b"], "templates": "{{x}} {}"},
            check=ranked(2),
        ),
        js("label with braces", C, {"images": [IMG], "labels": ["{0.__class__}", "{}"]}, check=ranked(2)),
        js(
            "101 templates",
            C,
            {"images": [IMG], "labels": ["a"], "templates": [f"{i} {{}}" for i in range(101)]},
            413,
            "templates",
        ),
        raw("lone surrogate label", C, f'{{"images": ["{IMG}"], "labels": ["\\ud800"]}}', 400, "body"),
        raw(
            "lone surrogate template",
            C,
            f'{{"images": ["{IMG}"], "labels": ["a"], "templates": "\\udc00 {{}}"}}',
            400,
            "body",
        ),
        form(
            "multipart labels as a file", [("images", ("a.png", PNG)), ("labels", ("l.txt", b"a,b"))], 422, "labels[0]"
        ),
        form(
            "multipart templates as a file",
            [("images", ("a.png", PNG)), ("labels", "a,b"), ("templates", ("t.txt", b"{}"))],
            422,
            "templates[0]",
        ),
        form("multipart unknown field", [("image", ("a.png", PNG)), ("labels", "a,b")], 422, "images"),
        form("multipart no labels", [("images", ("a.png", PNG))], 422, "labels"),
        form("multipart images as text", [("images", IMG), ("labels", "a,b")], 422, "images[0]"),
        raw("multipart without boundary", C, b"--x\r\n", 400, kind="multipart/form-data"),
        raw("multipart garbage", C, b"\x00\xff" * 100, 400, kind="multipart/form-data; boundary=zz"),
    ],
    "images": [
        js("base64 garbage", E, {"input": ["@@@not base64@@@"], "modality": "image"}, 422, "input[0]"),
        js("base64 of text", E, {"input": [b64(b"hello world")], "modality": "image"}, 422, "input[0]"),
        js("data uri text/html", E, {"input": ["data:text/html;base64," + IMG], "modality": "image"}, 422, "input[0]"),
        js("data uri not base64", E, {"input": ["data:image/png,rawdata"], "modality": "image"}, 422, "input[0]"),
        js(
            "data uri jpeg holding a png",
            E,
            {"input": ["data:image/jpeg;base64," + IMG], "modality": "image"},
            check=embeds(1),
        ),
        js(
            "100000x100000 header",
            E,
            {"input": [b64(png_claiming(100_000, 100_000))], "modality": "image"},
            413,
            "input[0]",
        ),
        js("truncated jpeg", E, {"input": [b64(JPEG_TRUNCATED)], "modality": "image"}, 422, "input[0]"),
        js("zero bytes", E, {"input": [""], "modality": "image"}, 422, "input[0]"),
        form("multipart zero-byte file", [("images", ("a.png", b"")), ("labels", "a,b")], 422, "images[0]"),
        js("polyglot png+html", E, {"input": [b64(POLYGLOT)], "modality": "image"}, check=embeds(1)),
        js("html with png magic", E, {"input": [b64(HTML_WITH_PNG_MAGIC)], "modality": "image"}, 422, "input[0]"),
        js("1x1 image", E, {"input": [b64(png(1, 1))], "modality": "image"}, check=embeds(1)),
        js("thin 8x4000 image", E, {"input": [b64(png(4000, 8))], "modality": "image"}, (200, 413, 422), heavy=True),
        js("search with a garbage image", S, {"image": "%%%"}, 422, "image"),
    ],
    "text": [
        js("sql injection search", S, {"text": "' OR 1=1; DROP TABLE images; --", "k": 3}, check=hits),
        js("sql injection negative", S, {"text": "red", "negative": '"); DELETE FROM images; --'}, check=hits),
        js("search still finds after injection", S, {"text": "a photo of a red circle", "k": 5}, check=hits),
        js(
            "rtl override",
            E,
            {"input": ["\u202egnp.exe", "\u0627\u0644\u0639\u0631\u0628\u064a\u0629"]},
            check=embeds(2),
        ),
        js("zero-width text", E, {"input": ["a\u200b\u200c\u200d\ufeffb"]}, check=embeds(1)),
        js("only zero-width", E, {"input": ["\u200b\u200b"]}, (200, 422)),
        js("nul byte", E, {"input": ["a\u0000b"]}, check=embeds(1)),
        js("emoji pair", E, {"input": ["\U0001f600 cat"]}, check=embeds(1)),
        raw("lone surrogate search", S, '{"text": "\\ud800"}', 400, "body"),
        raw("lone surrogate embeddings", E, '{"input": ["ok", "x\\udfff"]}', 400, "body"),
        raw("escaped backslash then ud800", E, '{"input": ["\\\\ud800"]}', check=embeds(1)),
        js("whitespace only", E, {"input": ["   \t\n"]}, 422, "input[0]"),
        js("text over the limit", E, {"input": ["x" * 5000]}, 422, "input[0]"),
        js("long prompt within chars", E, {"input": ["word " * 399]}, (200, 422)),
    ],
    "image ids": [
        get("id dot dot", "/v1/images/../../etc/passwd", 404),
        get("id encoded dot dot", "/v1/images/%2e%2e%2f%2e%2e%2fetc%2fpasswd", 404),
        get("id encoded slash thumbnail", "/v1/images/..%2F..%2Fetc%2Fpasswd/thumbnail", 404),
        get("id negative", "/v1/images/-1", 422, "id"),
        get("id zero thumbnail", "/v1/images/0/thumbnail", 404, "id"),
        get("id sql", "/v1/images/1%20OR%201=1", 422, "id"),
        get("id sql semicolon", "/v1/images/1;DROP%20TABLE%20images", 422, "id"),
        get("id hex", "/v1/images/0x10", 422, "id"),
        get("id float", "/v1/images/1e3", 422, "id"),
        get("id 2^63", "/v1/images/9223372036854775808", 404, "id"),
        get("id 20 digits", "/v1/images/99999999999999999999/thumbnail", 404, "id"),
        get("id null byte", "/v1/images/1%00", 422, "id"),
    ],
    "openai fields": [
        js("encoding_format base64", E, {"input": ["a cat"], "encoding_format": "base64"}, check=base64_unit_vector),
        js("user and dimensions unknown", E, {"input": ["a cat"], "user": "u1"}, check=embeds(1)),
        js("model name", E, {"input": "a cat", "model": "text-embedding-3-small"}, check=embeds(1)),
    ],
    "api key": [
        js("no key", E, {"input": ["x"]}, 401, "Authorization", auth=False),
        Case(
            "wrong key",
            "POST",
            E,
            json={"input": ["x"]},
            headers={"Authorization": "Bearer nope"},
            status=401,
            field="Authorization",
            auth=False,
        ),
        Case(
            "basic scheme",
            "POST",
            E,
            json={"input": ["x"]},
            headers={"Authorization": f"Basic {KEY}"},
            status=401,
            field="Authorization",
            auth=False,
        ),
        Case(
            "key with extra bytes",
            "POST",
            E,
            json={"input": ["x"]},
            headers={"Authorization": f"Bearer {KEY}x"},
            status=401,
            field="Authorization",
            auth=False,
        ),
        raw("no key malformed body", S, '{"text": ', 401, "Authorization", auth=False),
        get("no key docs", "/docs", 401, "Authorization", auth=False),
        get("no key openapi", "/openapi.json", 401, "Authorization", auth=False),
        get("no key image", "/v1/images/1", 401, "Authorization", auth=False),
        get("no key metrics", "/metrics", 401, "Authorization", auth=False),
        get("health without key", "/healthz", 200, auth=False),
        get("page without key", "/", 200, auth=False),
        Case("head health", "HEAD", "/healthz", status=200, auth=False),
    ],
}


def _send(srv, case: Case):
    headers = {**case.headers, **(AUTH if case.auth else {})}
    if case.json is not None:
        return request(case.method, srv.url + case.path, json_body=case.json, headers=headers, timeout=TIMEOUT_S)
    return request(case.method, srv.url + case.path, data=case.data, headers=headers, timeout=TIMEOUT_S)


def _check(srv, case: Case) -> str | None:
    """None when the answer is right and the server logged no traceback for it, else what was wrong."""
    offset = srv.log_file.stat().st_size
    problem = _check_answer(srv, case)
    with open(srv.log_file, "rb") as f:
        f.seek(offset)
        logged = f.read().decode(errors="replace")
    if "Traceback" in logged or "Exception in ASGI" in logged:
        problem = (problem or f"{case.name}: answered, but") + f" the server logged a traceback: {logged[-800:]}"
    return problem


def _check_answer(srv, case: Case) -> str | None:
    try:
        reply = _send(srv, case)
    except OSError as exc:
        return f"{case.name}: no answer ({exc})"
    allowed = case.status if isinstance(case.status, tuple) else (case.status,)
    if reply.status not in allowed:
        return f"{case.name}: status {reply.status}, expected {case.status}: {reply.body[:300]!r}"
    if reply.status >= 400:
        if not reply.headers.get("content-type", "").startswith("application/json"):
            return f"{case.name}: {reply.status} is not JSON: {reply.body[:200]!r}"
        error = reply.json()["error"]
        if not error["message"] or (case.field and error["field"] != case.field):
            return f"{case.name}: error {error}, expected field {case.field}"
    elif case.check and case.method != "HEAD":
        try:
            case.check(reply.json())
        except (AssertionError, ValueError, KeyError) as exc:
            return f"{case.name}: wrong answer ({exc!r}): {reply.body[:200]!r}"
    return None


def _rss_kb(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("VmRSS:"))


@pytest.fixture(scope="module")
def server(index_model, shapes_index, tmp_path_factory):
    log = tmp_path_factory.mktemp("hostile-log") / "server.log"
    args = [
        "-m",
        str(index_model),
        "--db",
        str(shapes_index.backend.path),
        "--api-key",
        KEY,
        "--threads",
        "1",
        "--max-body-mb",
        str(MAX_BODY_MB),
        "--max-images",
        "8",
        "--max-labels",
        "50",
        "--read-timeout",
        str(READ_TIMEOUT_S),
    ]
    with ServerProcess(args, log_path=str(log)) as srv:
        srv.log_file = log
        yield srv


def _healthy(srv) -> None:
    assert request("GET", srv.url + "/healthz", timeout=5).status == 200


ALL = [(group, case) for group, cases in GROUPS.items() for case in cases]


def test_every_hostile_case_gets_a_4xx_or_a_correct_answer(server):
    failures = []
    for group, cases in GROUPS.items():
        for case in cases:
            problem = _check(server, case)
            if problem:
                failures.append(f"[{group}] {problem}")
        _healthy(server)
    assert not failures, "\n".join(failures)


def _status_line(answer: bytes) -> bytes:
    return answer.split(b"\r\n", 1)[0]


def _raw_exchange(srv, head: bytes, chunks, interval: float = 0.0, limit_s: float = 8.0) -> bytes:
    """Send ``head`` then each chunk (``interval`` s apart) until the server answers or closes; then read its
    answer to the end."""
    with socket.create_connection(("127.0.0.1", srv.port), timeout=limit_s) as sock:
        sock.sendall(head)
        start = time.monotonic()
        for chunk in chunks:
            if select.select([sock], [], [], interval)[0] or time.monotonic() - start > limit_s:
                break
            try:
                sock.sendall(chunk)
            except OSError:
                break
        out = b""
        try:
            while part := sock.recv(65536):
                out += part
        except OSError:
            pass
        return out


def test_bodies_over_the_limit_and_slow_bodies(server):
    auth = f"Authorization: Bearer {KEY}\r\n".encode()
    declared = _raw_exchange(
        server,
        b"POST /v1/embeddings HTTP/1.1\r\nHost: x\r\n"
        + auth
        + b"Content-Type: application/json\r\nContent-Length: 99999999\r\n\r\n",
        [],
    )
    assert _status_line(declared).startswith(b"HTTP/1.1 413"), declared[:200]
    chunk = b"10000\r\n" + b"a" * 0x10000 + b"\r\n"
    chunked = _raw_exchange(
        server,
        b"POST /v1/search HTTP/1.1\r\nHost: x\r\n"
        + auth
        + b"Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
        b'd\r\n{"text": "aaa\r\n',
        [chunk] * (MAX_BODY_MB * 16 + 16),
    )
    assert _status_line(chunked).startswith(b"HTTP/1.1 413"), chunked[:200]
    assert json.loads(chunked.partition(b"\r\n\r\n")[2])["error"]["field"] == "body"
    start = time.monotonic()
    slow = _raw_exchange(
        server,
        b"POST /v1/classify HTTP/1.1\r\nHost: x\r\n"
        + auth
        + b"Content-Type: application/json\r\nContent-Length: 500\r\n\r\n",
        [b"{"] * 500,
        0.25,
    )
    assert _status_line(slow).startswith(b"HTTP/1.1 408"), slow[:200]
    assert time.monotonic() - start < READ_TIMEOUT_S + 3
    _healthy(server)


def test_uploads_cut_off_midway_leave_no_traceback(server):
    """The client hangs up with the body half sent: nobody gets an answer, the log gets no traceback."""
    offset = server.log_file.stat().st_size
    part = b'--x\r\nContent-Disposition: form-data; name="images"; filename="a.png"\r\n\r\n' + PNG[:100]
    for path, kind, body in (
        ("/v1/classify", "multipart/form-data; boundary=x", part),
        ("/v1/classify", "application/json", b'{"images": ["' + IMG[:100].encode()),
        ("/v1/embeddings", "application/json", b'{"input": ["abc'),
        ("/v1/search", "application/json", b'{"text": "abc'),
    ):
        with socket.create_connection(("127.0.0.1", server.port), timeout=5) as sock:
            sock.sendall(
                f"POST {path} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {KEY}\r\n"
                f"Content-Type: {kind}\r\nContent-Length: 100000\r\n\r\n".encode()
                + body
            )
            time.sleep(0.2)
    time.sleep(0.5)
    _healthy(server)
    logged = server.log_file.read_bytes()[offset:].decode(errors="replace")
    assert "Traceback" not in logged, logged[-2000:]


def test_no_traceback_and_memory_stays_flat_over_2000_requests(server):
    cheap = [
        case
        for _, case in ALL
        if not case.heavy
        and len(case.data or b"") + (len(json.dumps(case.json)) if case.json is not None else 0) < 300_000
    ]
    pid = server.proc.pid
    for i in range(2000):
        if i == 200:
            after_200 = _rss_kb(pid)
        problem = _check(server, cheap[i % len(cheap)])
        assert problem is None, problem
        if i % 250 == 0:
            _healthy(server)
    after_2000 = _rss_kb(pid)
    print(f"server RSS after 200 requests {after_200} kB, after 2000 {after_2000} kB")
    assert after_2000 <= after_200 * 1.10, f"RSS grew from {after_200} kB to {after_2000} kB"
