"""``clipforge serve`` against a real uvicorn subprocess on loopback: results equal the in-process runtime, every
bad input is a 4xx JSON error naming the field, 32 concurrent requests are batched and answered correctly."""

from __future__ import annotations

import base64
import contextlib
import io
import json
import os
import re
import signal
import struct
import threading
import time
import zlib
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("fastapi")
pytest.importorskip("uvicorn")

from clipforge.testing.server import ServerProcess, multipart, request  # noqa: E402

LABELS = ["red circle", "blue square", "green triangle", "yellow cross"]


@pytest.fixture(scope="module")
def model(loaded_model):
    return loaded_model


@pytest.fixture(scope="module")
def index(shapes_index):
    return shapes_index


@pytest.fixture(scope="module")
def server(index_model, index, tmp_path_factory):
    log = tmp_path_factory.mktemp("serve-log") / "server.log"
    args = [
        "-m",
        str(index_model),
        "--db",
        str(index.backend.path),
        "--max-images",
        "8",
        "--max-labels",
        "50",
        "--max-body-mb",
        "2",
        "--max-wait-ms",
        "20",
        "--threads",
        "1",
    ]
    with ServerProcess(args, log_path=str(log)) as srv:
        yield srv


@pytest.fixture(scope="module")
def photos(shapes_dataset):
    """Encoded PNG/JPEG bytes of 32 test images, several classes."""
    files = sorted(p for p in (shapes_dataset.root / "test").rglob("*") if p.is_file())
    return [p.read_bytes() for p in files[:: len(files) // 32][:32]]


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def png(width: int, height: int) -> bytes:
    from PIL import Image

    out = io.BytesIO()
    Image.new("RGB", (width, height), (10, 200, 30)).save(out, "PNG")
    return out.getvalue()


def huge_png_header(width: int = 20000, height: int = 20000) -> bytes:
    """A PNG whose IHDR claims width x height (with a valid CRC): the pixels are never there."""
    data = bytearray(png(16, 16))
    data[16:24] = struct.pack(">II", width, height)
    data[29:33] = struct.pack(">I", zlib.crc32(bytes(data[12:29])) & 0xFFFFFFFF)
    return bytes(data)


def truncated_jpeg() -> bytes:
    from PIL import Image

    out = io.BytesIO()
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (64, 64, 3), np.uint8)).save(out, "JPEG")
    return out.getvalue()[: len(out.getvalue()) // 2]


def post(srv, path, body, timeout: float = 30, **kw):
    return request("POST", srv.url + path, json_body=body, timeout=timeout, **kw)


def embed_images(srv, images: list[bytes]):
    return post(srv, "/v1/embeddings", {"input": [b64(i) for i in images], "modality": "image"})


def vectors(reply) -> np.ndarray:
    assert reply.status == 200, reply.body
    return np.array([d["embedding"] for d in sorted(reply.json()["data"], key=lambda d: d["index"])], np.float32)


# --- results equal the runtime ---------------------------------------------------------------------------
def test_text_and_image_embeddings_equal_the_runtime(server, model, photos):
    texts = ["a photo of a red circle.", "a blue square", "yellow"]
    reply = post(server, "/v1/embeddings", {"input": texts, "model": "ignored"})
    assert reply.json()["model"] == "clip"
    np.testing.assert_allclose(vectors(reply), model.embed_texts(texts), atol=1e-5)
    data_uri = "data:image/png;base64," + b64(photos[0])
    reply = post(server, "/v1/embeddings", {"input": [data_uri, b64(photos[1])], "modality": "image"})
    np.testing.assert_allclose(vectors(reply), model.embed_images(photos[:2]), atol=1e-5)


def test_classify_json_and_multipart_equal_the_runtime(server, model, photos):
    expected = model.classify(photos[:3], LABELS, top_k=len(LABELS))
    reply = post(server, "/v1/classify", {"images": [b64(p) for p in photos[:3]], "labels": LABELS})
    assert reply.status == 200, reply.body
    _same_rankings(reply.json()["results"], expected)
    body, kind = multipart(
        [
            ("images", ("a.png", photos[0])),
            ("labels", "red circle, blue square"),
            ("labels", "green triangle"),
            ("labels", "yellow cross"),
            ("top_k", "2"),
        ]
    )
    reply = request("POST", server.url + "/v1/classify", data=body, headers={"Content-Type": kind})
    assert reply.status == 200, reply.body
    _same_rankings(reply.json()["results"], [expected[0][:2]])


def _same_rankings(got, expected):
    assert [[r["label"] for r in row] for row in got] == [[r["label"] for r in row] for row in expected]
    np.testing.assert_allclose(
        [[r["score"] for r in row] for row in got], [[r["score"] for r in row] for row in expected], atol=1e-5
    )


# --- search and indexed images -------------------------------------------------------------------------------
def _hits(reply):
    assert reply.status == 200, reply.body
    return [(h["id"], h["path"], h["score"]) for h in reply.json()["results"]]


def test_search_equals_the_index_and_finds_the_class(server, index, shapes_dataset):
    query = {"text": "a photo of a red circle.", "k": 10}
    got = _hits(post(server, "/v1/search", query))
    expected = index.search(text=query["text"], k=10)
    assert [g[:2] for g in got] == [(h.id, h.path) for h in expected]
    np.testing.assert_allclose([g[2] for g in got], [h.score for h in expected], atol=1e-5)
    assert all("/red circle/" in path for _, path, _ in got[:5])
    example = next((shapes_dataset.root / "test" / "blue square").iterdir()).read_bytes()
    both = {"text": "a photo of a blue square.", "image": b64(example), "negative": "red", "k": 5, "min_score": 0.0}
    expected = index.search(text=both["text"], image=example, negative="red", k=5, min_score=0.0)
    got = _hits(post(server, "/v1/search", both))
    assert [g[0] for g in got] == [h.id for h in expected]
    np.testing.assert_allclose([g[2] for g in got], [h.score for h in expected], atol=1e-5)


def test_images_are_served_by_id_only(server, index):
    hit = index.search(text="a green triangle", k=1)[0]
    reply = request("GET", f"{server.url}/v1/images/{hit.id}")
    assert reply.status == 200 and reply.body == Path(hit.path).read_bytes()
    thumb = request("GET", f"{server.url}/v1/images/{hit.id}/thumbnail")
    from PIL import Image

    assert thumb.headers["content-type"] == "image/jpeg"
    assert max(Image.open(io.BytesIO(thumb.body)).size) <= 256
    for path, status, field in (
        (f"/v1/images/{10**9}", 404, "id"),
        ("/v1/images/abc", 422, "id"),
        ("/v1/images/..%2F..%2Fetc%2Fpasswd", 404, "path"),
        ("/v1/images/-1/thumbnail", 422, "id"),
    ):
        reply = request("GET", server.url + path)
        assert (reply.status, reply.json()["error"]["field"]) == (status, field), path


# --- /v1/images: only the indexed image, strict ids, type from the decoded format ------------------------
@pytest.fixture
def own_index(loaded_model, tmp_path):
    """A fresh SQLite index of two PNGs, one named page.html (a PNG/HTML polyglot), and a client on the app."""
    from fastapi.testclient import TestClient

    from clipforge.index import Index
    from clipforge.serve import ServeSettings, create_app

    photos = tmp_path / "photos"
    photos.mkdir()
    (photos / "a.png").write_bytes(png(40, 30))
    (photos / "page.html").write_bytes(png(30, 40) + b"<html><script>alert(1)</script></html>")
    idx = Index(tmp_path / "own.db", loaded_model)
    idx.add([photos / "a.png", photos / "page.html"])
    ids = {Path(path).name: i for i, path in zip(*idx.backend.vectors()[:2])}
    with TestClient(create_app(loaded_model, idx, ServeSettings())) as client:
        deadline = time.monotonic() + 30
        while client.get("/readyz").status_code != 200 and time.monotonic() < deadline:
            time.sleep(0.05)
        yield client, photos, {k: int(v) for k, v in ids.items()}
    idx.close()


def _error(reply, status: int, field: str = "id") -> str:
    assert (reply.status_code, reply.json()["error"]["field"]) == (status, field), reply.text
    return reply.json()["error"]["message"]


def test_image_ids_are_parsed_strictly(own_index):
    client, _, ids = own_index
    for bad in ("9223372036854775808", "12345678901234567890", "99999999999999999999999"):
        for suffix in ("", "/thumbnail"):
            assert "no image with id" in _error(client.get(f"/v1/images/{bad}{suffix}"), 404)
    for bad in ("1_0", "+1", "1.0", "%201", "0x1", "١"):
        for suffix in ("", "/thumbnail"):
            assert "not a decimal number" in _error(client.get(f"/v1/images/{bad}{suffix}"), 422)
    assert client.get(f"/v1/images/{ids['a.png']}").status_code == 200


def test_images_get_the_decoded_type_and_safe_headers(own_index):
    client, photos, ids = own_index
    reply = client.get(f"/v1/images/{ids['page.html']}")
    assert reply.status_code == 200 and reply.content == (photos / "page.html").read_bytes()
    assert reply.headers["content-type"] == "image/png"
    for path in (f"/v1/images/{ids['page.html']}", f"/v1/images/{ids['a.png']}/thumbnail"):
        headers = client.get(path).headers
        assert headers["x-content-type-options"] == "nosniff"
        assert "default-src 'none'" in headers["content-security-policy"]


@pytest.mark.parametrize("change", ["symlink", "replaced", "touched", "deleted", "fifo"])
def test_a_file_changed_since_indexing_is_not_served(own_index, change):
    client, photos, ids = own_index
    target = photos / "a.png"
    original = target.read_bytes()
    stat = target.stat()
    target.unlink()
    if change == "symlink":  # the indexed file replaced by a link to a file outside the photos
        target.symlink_to("/etc/passwd")
    elif change == "replaced":  # same size and mtime, other bytes
        target.write_bytes(bytes(len(original)))
        os.utime(target, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    elif change == "touched":
        target.write_bytes(original)
    elif change == "fifo":
        os.mkfifo(target)
    for suffix in ("", "/thumbnail"):
        message = _error(client.get(f"/v1/images/{ids['a.png']}{suffix}"), 404)
        assert "changed since it was indexed" in message and "re-index" in message


# --- bad input: 4xx JSON naming the field, and the server keeps serving ---------------------------------
def _form(fields):
    body, kind = multipart(fields)
    return {"data": body, "headers": {"Content-Type": kind}}


BAD = {  # name: (path, json body or request kwargs, status, field)
    "garbage base64": ("/v1/embeddings", {"input": ["%%%not base64%%%"], "modality": "image"}, 422, "input[0]"),
    "non-image bytes": (
        "/v1/embeddings",
        {"input": [b64(b"just some text, no image")], "modality": "image"},
        422,
        "input[0]",
    ),
    "truncated jpeg": (
        "/v1/embeddings",
        {"input": [b64(png(32, 32)), b64(truncated_jpeg())], "modality": "image"},
        422,
        "input[1]",
    ),
    "100000x100000 image header": (
        "/v1/embeddings",
        {"input": [b64(png(8, 8)), b64(huge_png_header(100000, 100000))], "modality": "image"},
        413,
        "input[1]",
    ),
    "20000x20000 image": ("/v1/embeddings", {"input": [b64(huge_png_header())], "modality": "image"}, 413, "input[0]"),
    "too many images": ("/v1/embeddings", {"input": [b64(png(16, 16))] * 9, "modality": "image"}, 413, "input"),
    "empty text": ("/v1/embeddings", {"input": ["ok", "  "]}, 422, "input[1]"),
    "over-long text": ("/v1/embeddings", {"input": ["word " * 1000]}, 422, "input[0]"),
    "empty input list": ("/v1/embeddings", {"input": []}, 422, "input"),
    "input list of mixed types": ("/v1/embeddings", {"input": ["a red circle", 3]}, 422, "input"),
    "token-id input": ("/v1/embeddings", {"input": [[101, 2023, 102]]}, 422, "input"),
    "missing input": ("/v1/embeddings", {"modality": "text"}, 422, "input"),
    "unknown modality": ("/v1/embeddings", {"input": ["x"], "modality": "video"}, 422, "modality"),
    "malformed json": (
        "/v1/embeddings",
        {"data": b'{"input": [', "headers": {"Content-Type": "application/json"}},
        400,
        "body",
    ),
    "wrong content type": (
        "/v1/embeddings",
        {"data": b"input=x", "headers": {"Content-Type": "text/plain"}},
        415,
        "Content-Type",
    ),
    "classify wrong content type": (
        "/v1/classify",
        {"data": b"x", "headers": {"Content-Type": "text/csv"}},
        415,
        "Content-Type",
    ),
    "empty labels": ("/v1/classify", {"images": [b64(png(16, 16))], "labels": []}, 422, "labels"),
    "duplicate labels": (
        "/v1/classify",
        {"images": [b64(png(16, 16))], "labels": ["cat", "dog", "cat"]},
        422,
        "labels",
    ),
    "10000 labels": (
        "/v1/classify",
        {"images": [b64(png(16, 16))], "labels": [f"l{i}" for i in range(10000)]},
        413,
        "labels",
    ),
    "labels x templates over max_prompts": (
        "/v1/classify",
        {
            "images": [b64(png(16, 16))],
            "labels": [f"l{i}" for i in range(40)],
            "templates": [f"{{}} {j}" for j in range(30)],
        },
        413,
        "labels",
    ),
    "101 templates": (
        "/v1/classify",
        {"images": [b64(png(16, 16))], "labels": ["a"], "templates": [f"{{}} {j}" for j in range(101)]},
        413,
        "templates",
    ),
    "template without placeholder": (
        "/v1/classify",
        {"images": [b64(png(16, 16))], "labels": ["a", "b"], "templates": ["a photo"]},
        422,
        "templates",
    ),
    "top_k zero": ("/v1/classify", {"images": [b64(png(16, 16))], "labels": ["a"], "top_k": 0}, 422, "top_k"),
    "bad image in classify": (
        "/v1/classify",
        {"images": [b64(png(16, 16)), b64(b"GIF89a broken")], "labels": ["a", "b"]},
        422,
        "images[1]",
    ),
    "multipart image as text field": (
        "/v1/classify",
        _form([("images", "not a file"), ("labels", "a,b")]),
        422,
        "images[0]",
    ),
    "multipart without images": ("/v1/classify", _form([("labels", "a,b")]), 422, "images"),
    "search without a query": ("/v1/search", {"k": 5}, 422, "text"),
    "search k zero": ("/v1/search", {"text": "a red circle", "k": 0}, 422, "k"),
    "search k over the limit": ("/v1/search", {"text": "a red circle", "k": 5000}, 422, "k"),
    "search bad image": ("/v1/search", {"image": b64(b"not an image")}, 422, "image"),
    "search empty negative": ("/v1/search", {"text": "a red circle", "negative": " "}, 422, "negative"),
    "unknown route": ("/v1/nothing", {"x": 1}, 404, "path"),
}


def _raw_json(text: str) -> dict:
    """A JSON body sent byte for byte (``json.dumps`` would never write a lone surrogate escape)."""
    return {"data": text.encode(), "headers": {"Content-Type": "application/json"}}


_IMG = b64(png(16, 16))
_DEEP = "[" * 100_000 + "]" * 100_000
BAD_500 = {  # inputs that answered 500 with a traceback before: (path, request kwargs or JSON body, status, field)
    "template with two placeholders": (
        "/v1/classify",
        {"images": [_IMG], "labels": ["a", "b"], "templates": "{} and {}"},
        422,
        "templates",
    ),
    "template reading an attribute": (
        "/v1/classify",
        {"images": [_IMG], "labels": ["a", "b"], "templates": ["{0.__class__} {}"]},
        422,
        "templates",
    ),
    "template with an index": (
        "/v1/classify",
        {"images": [_IMG], "labels": ["a"], "templates": "{1} {}"},
        422,
        "templates",
    ),
    "template with a lone brace": (
        "/v1/classify",
        {"images": [_IMG], "labels": ["a"], "templates": "{} }"},
        422,
        "templates",
    ),
    "lone surrogate label": (
        "/v1/classify",
        _raw_json(f'{{"images": ["{_IMG}"], "labels": ["\\ud800"]}}'),
        400,
        "body",
    ),
    "lone surrogate template": (
        "/v1/classify",
        _raw_json(f'{{"images": ["{_IMG}"], "labels": ["a"], "templates": "\\udc00 {{}}"}}'),
        400,
        "body",
    ),
    "lone surrogate search": ("/v1/search", _raw_json('{"text": "red \\ud800 circle"}'), 400, "body"),
    "lone surrogate embeddings": ("/v1/embeddings", _raw_json('{"input": ["ok", "\\udfff"]}'), 400, "body"),
    "utf-8 encoded surrogate": (
        "/v1/embeddings",
        {"data": b'{"input": ["\xed\xa0\x80"]}', "headers": {"Content-Type": "application/json"}},
        400,
        "body",
    ),
    "deep json classify": ("/v1/classify", _raw_json(_DEEP), 400, "body"),
    "deep json search": ("/v1/search", _raw_json(_DEEP), 400, "body"),
    "deep json embeddings": ("/v1/embeddings", _raw_json('{"input": ' + _DEEP + "}"), 400, "body"),
    "5000-digit top_k json": (
        "/v1/classify",
        _raw_json(f'{{"images": ["{_IMG}"], "labels": ["a"], "top_k": {"9" * 5000}}}'),
        400,
        "body",
    ),
    "multipart superscript top_k": (
        "/v1/classify",
        _form([("images", ("a.png", png(16, 16))), ("labels", "a,b"), ("top_k", "\u00b2")]),
        422,
        "top_k",
    ),
    "multipart 5000-digit top_k": (
        "/v1/classify",
        _form([("images", ("a.png", png(16, 16))), ("labels", "a,b"), ("top_k", "7" * 5000)]),
        422,
        "top_k",
    ),
    "multipart labels as a file": (
        "/v1/classify",
        _form([("images", ("a.png", png(16, 16))), ("labels", ("labels.txt", b"a,b"))]),
        422,
        "labels[0]",
    ),
    "multipart top_k as a file": (
        "/v1/classify",
        _form([("images", ("a.png", png(16, 16))), ("labels", "a,b"), ("top_k", ("k.txt", b"1"))]),
        422,
        "top_k[0]",
    ),
}
BAD.update(BAD_500)


@pytest.mark.parametrize("name", list(BAD))
def test_bad_input_is_a_4xx_json_error_naming_the_field(server, name):
    path, body, status, field = BAD[name]
    raw = isinstance(body, dict) and "data" in body and "headers" in body
    reply = request("POST", server.url + path, timeout=15, **body) if raw else post(server, path, body)
    assert reply.headers["content-type"].startswith("application/json")
    error = reply.json()["error"]
    assert (reply.status, error["field"]) == (status, field), error
    assert error["message"]


def test_a_body_over_the_limit_is_refused_before_it_is_read(server):
    """The declared Content-Length (3 MB, limit 2 MB) is refused at once: the body is never sent."""
    import http.client

    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    conn.putrequest("POST", "/v1/embeddings")
    conn.putheader("Content-Type", "application/json")
    conn.putheader("Content-Length", str(3 * 1024 * 1024))
    conn.endheaders()  # headers only: the 3 MB never follow
    reply = conn.getresponse()
    assert reply.status == 413
    assert json.loads(reply.read())["error"]["field"] == "body"
    conn.close()


def _read_until_closed(sock, limit_s: float = 10.0) -> bytes:
    """Everything the server sends until it closes the connection (the error answers say Connection: close)."""
    sock.settimeout(limit_s)
    out = b""
    with contextlib.suppress(OSError):
        while chunk := sock.recv(65536):
            out += chunk
    return out


def test_a_chunked_body_over_the_limit_gets_413(server):
    """No Content-Length: the body streams in 64 kB chunks and crosses the 2 MB limit while it is read (it
    answered 400 "There was an error parsing the body")."""
    import select
    import socket

    part = b'--x\r\nContent-Disposition: form-data; name="images"; filename="a.png"\r\n\r\n'
    for path, kind, start in (
        ("/v1/embeddings", "application/json", b'{"input": ["'),
        ("/v1/classify", "application/json", b'{"images": ["'),
        ("/v1/classify", "multipart/form-data; boundary=x", part),
    ):
        with socket.create_connection(("127.0.0.1", server.port), timeout=15) as sock:
            sock.sendall(
                f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: {kind}\r\n"
                "Transfer-Encoding: chunked\r\n\r\n".encode()
                + b"%x\r\n%s\r\n" % (len(start), start)
            )
            for _ in range(64):  # 4 MB at most, stopping as soon as the server answers
                if select.select([sock], [], [], 0)[0]:
                    break
                try:
                    sock.sendall(b"10000\r\n" + b"a" * 0x10000 + b"\r\n")
                except OSError:  # the server answered and closed between the check and the send
                    break
            answer = _read_until_closed(sock)
        head, _, body = answer.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 413"), (path, kind, answer[:300])
        assert json.loads(body)["error"]["field"] == "body"


def test_head_answers_like_get_without_a_body(server):
    for path in ("/", "/healthz", "/readyz", "/static/app.js"):
        get, head = request("GET", server.url + path), request("HEAD", server.url + path)
        assert (head.status, head.body) == (200, b""), path
        assert head.headers["content-length"] == get.headers["content-length"], path
    assert request("HEAD", server.url + "/v1/embeddings").status == 405


def test_server_keeps_serving_after_bad_input(server, photos):
    for name in ("truncated jpeg", "20000x20000 image", "malformed json"):
        test_bad_input_is_a_4xx_json_error_naming_the_field(server, name)
    assert embed_images(server, photos[:1]).status == 200
    assert request("GET", server.url + "/healthz").status == 200


# --- concurrency and batching ----------------------------------------------------------------------------
def _concurrently(calls):
    """Run the calls at the same moment (a barrier), one thread each; results in order."""
    barrier, results = threading.Barrier(len(calls)), [None] * len(calls)

    def run(i, fn):
        barrier.wait()
        results[i] = fn()

    threads = [threading.Thread(target=run, args=(i, fn)) for i, fn in enumerate(calls)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    return results


def _image_batches(srv) -> tuple[int, float]:
    text = request("GET", srv.url + "/metrics").body.decode()
    count = re.search(r'clipforge_batch_size_count\{encoder="image"\} (\d+)', text)
    total = re.search(r'clipforge_batch_size_sum\{encoder="image"\} ([\d.]+)', text)
    return (int(count.group(1)), float(total.group(1))) if count else (0, 0.0)


def test_32_concurrent_requests_are_batched_and_correct(server, model, photos):
    expected = model.embed_images(photos)
    batches_before, items_before = _image_batches(server)
    replies = _concurrently([lambda p=p: embed_images(server, [p]) for p in photos])
    got = np.concatenate([vectors(r) for r in replies])
    np.testing.assert_allclose(got, expected, atol=1e-5)
    batches, items = _image_batches(server)
    assert items - items_before == 32
    assert batches - batches_before < 32, "no two concurrent requests shared an encoder run"


def test_a_bad_item_fails_only_its_own_request(server, model, photos):
    bad = {3: truncated_jpeg(), 9: b"GIF89a broken", 14: b"\x89PNG\r\n\x1a\n garbage"}
    payloads = [bad.get(i, p) for i, p in enumerate(photos[:16])]
    replies = _concurrently([lambda p=p: embed_images(server, [p]) for p in payloads])
    for i, reply in enumerate(replies):
        if i in bad:
            assert (reply.status, reply.json()["error"]["field"]) == (422, "input[0]")
        else:
            np.testing.assert_allclose(vectors(reply)[0], model.embed_images([photos[i]])[0], atol=1e-5)


def test_health_ready_and_prometheus_metrics(server, photos):
    assert embed_images(server, photos[:1]).status == 200
    assert post(server, "/v1/embeddings", {"input": [""]}).status == 422
    assert post(server, "/v1/classify", {"images": [b64(photos[0])], "labels": LABELS}).status == 200
    assert request("GET", server.url + "/healthz").json() == {"status": "ok"}
    ready = request("GET", server.url + "/readyz").json()
    assert ready["status"] == "ready" and ready["providers"][0] == "CPUExecutionProvider"
    reply = request("GET", server.url + "/metrics")
    assert reply.status == 200 and reply.headers["content-type"].startswith("text/plain")
    text = reply.body.decode()
    assert re.search(r'clipforge_requests_total\{endpoint="/v1/embeddings",method="POST",status="200"\} [1-9]', text)
    assert re.search(r'clipforge_requests_total\{endpoint="/v1/embeddings",method="POST",status="422"\} [1-9]', text)
    assert re.search(r'clipforge_request_duration_seconds_bucket\{endpoint="/v1/classify",le="\+Inf"\} [1-9]', text)
    assert 'clipforge_queue_depth{encoder="image"} 0' in text
    for line in text.splitlines():  # every sample line is "name{labels} number"
        assert line.startswith("#") or re.fullmatch(r'[a-z_]+(\{([a-z_]+="[^"]*",?)*\})? -?[\d.e+-]+', line), line


def test_page_is_self_contained(server):
    reply = request("GET", server.url + "/")
    assert reply.status == 200 and b'id="classify-form"' in reply.body
    for asset in (
        reply.body,
        request("GET", server.url + "/static/app.js").body,
        request("GET", server.url + "/static/style.css").body,
    ):
        assert not re.search(rb"(src|href)=\"https?://|url\(https?:|import .* from \"https?:", asset)
    assert request("GET", server.url + "/docs").status == 200
    schema = request("GET", server.url + "/openapi.json").json()
    assert {"/v1/embeddings", "/v1/classify", "/v1/search"} <= set(schema["paths"])


# --- API key, SIGTERM drain ---------------------------------------------------------------------------------
def test_api_key_and_sigterm_drain(index_model, model, photos):
    args = ["-m", str(index_model), "--threads", "1"]
    srv = ServerProcess(args, env={"CLIPFORGE_API_KEY": "s3cret"}).start()
    try:
        auth = {"Authorization": "Bearer s3cret"}
        for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": "Basic s3cret"}):
            reply = post(srv, "/v1/embeddings", {"input": ["x"]}, headers=headers)
            assert (reply.status, reply.json()["error"]["field"]) == (401, "Authorization")
        assert request("GET", srv.url + "/metrics").status == 401
        for path in ("/docs", "/redoc", "/openapi.json", "/v1/info"):  # public before: the schema, the docs
            reply = request("GET", srv.url + path)
            assert (reply.status, reply.json()["error"]["field"]) == (401, "Authorization"), path
        assert request("GET", srv.url + "/docs", headers=auth).status == 200
        for path in ("/", "/healthz", "/readyz", "/static/app.js"):
            assert request("GET", srv.url + path).status == 200, path
        for path in ("/v1/embeddings", "/v1/search"):  # the key is checked before the body is read or parsed
            reply = request("POST", srv.url + path, data=b'{"input": [', headers={"Content-Type": "application/json"})
            assert reply.status == 401, path
            assert _status_without_sending_the_body(srv, path, 30 * 1024 * 1024) == 401, path
        reply = post(srv, "/v1/search", {"text": "a red circle"}, headers=auth)
        assert (reply.status, reply.json()["error"]["field"]) == (404, "path")  # no --db: no search
        assert request("GET", srv.url + "/healthz").status == 200 and request("GET", srv.url + "/readyz").status == 200
        # a request in flight when SIGTERM comes (its body half sent) is still answered, then the server exits
        import http.client

        body = json.dumps({"input": [b64(photos[0])], "modality": "image"}).encode()
        conn = http.client.HTTPConnection("127.0.0.1", srv.port, timeout=20)
        conn.putrequest("POST", "/v1/embeddings")
        for name, value in {**auth, "Content-Type": "application/json", "Content-Length": str(len(body))}.items():
            conn.putheader(name, value)
        conn.endheaders(body[: len(body) // 2])
        threading.Event().wait(0.3)
        srv.terminate()
        threading.Event().wait(0.5)
        assert srv.proc.poll() is None, "the server exited with a request in flight"
        conn.send(body[len(body) // 2 :])
        reply = conn.getresponse()
        assert reply.status == 200
        got = np.array(json.loads(reply.read())["data"][0]["embedding"], np.float32)
        np.testing.assert_allclose(got, model.embed_images(photos[:1])[0], atol=1e-5)
        conn.close()
        assert srv.proc.wait(20) in (0, -signal.SIGTERM)  # uvicorn re-raises the signal after draining
    finally:
        srv.stop()


def _status_without_sending_the_body(srv, path: str, length: int, headers: dict | None = None) -> int:
    """The status of a POST whose headers promise ``length`` bytes that never come (the answer must not wait)."""
    import http.client

    conn = http.client.HTTPConnection("127.0.0.1", srv.port, timeout=10)
    conn.putrequest("POST", path)
    for name, value in {"Content-Type": "application/json", "Content-Length": str(length), **(headers or {})}.items():
        conn.putheader(name, value)
    conn.endheaders()
    try:
        return conn.getresponse().status
    finally:
        conn.close()


@pytest.mark.parametrize(
    ("env", "args", "expected"),
    [
        ({}, ["--api-key", ""], "the API key is empty"),
        ({"CLIPFORGE_API_KEY": ""}, [], "the API key is empty"),
        ({}, ["--api-key", "cl\u00e9-s3cr\u00e8te"], "outside printable ASCII"),
        ({}, ["--api-key", "two s3cr words"], "outside printable ASCII"),
    ],
)
def test_an_empty_or_non_ascii_api_key_is_refused_in_one_line(env, args, expected, tmp_path):
    """An empty key used to switch authentication off; a non-ASCII one made every request 401."""
    import os
    import subprocess
    import sys

    out = subprocess.run(
        [sys.executable, "-m", "clipforge.cli.main", "serve", "-m", str(tmp_path), *args],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, **env},
        check=False,
    )
    assert out.returncode != 0
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and expected in lines[0], out.stderr
    assert "s3cr" not in out.stderr  # the key is never echoed


def _trickle(sock, data: bytes, interval: float, limit_s: float) -> bytes:
    """Send ``data`` a byte every ``interval`` s until the server answers or closes (then its answer, b"" for a
    close) or ``limit_s`` passes (then None)."""
    import select
    import time

    start = time.monotonic()
    for byte in data:
        if select.select([sock], [], [], interval)[0]:
            break
        try:
            sock.sendall(bytes([byte]))
        except OSError:
            break
        if time.monotonic() - start > limit_s:
            return None
    return _read_until_closed(sock, limit_s)


@pytest.mark.slow
def test_idle_and_slow_clients_are_cut_after_the_read_timeout(index_model):
    """--read-timeout 1: a connection that sends nothing, or headers a byte at a time, is closed; a body that
    trickles in gets 408. Before, all three held the connection for as long as the client liked."""
    import socket
    import time

    with ServerProcess(["-m", str(index_model), "--threads", "1", "--read-timeout", "1"]) as srv:
        with socket.create_connection(("127.0.0.1", srv.port), timeout=6) as sock:  # idle: never sends
            start = time.monotonic()
            assert sock.recv(1024) == b"" and time.monotonic() - start < 5
        with socket.create_connection(("127.0.0.1", srv.port), timeout=6) as sock:  # headers trickle in
            assert _trickle(sock, b"POST /v1/embeddings HTTP/1.1\r\nHost: x\r\n" * 10, 0.1, 4) == b""
        with socket.create_connection(("127.0.0.1", srv.port), timeout=6) as sock:  # the body trickles in
            sock.sendall(
                b"POST /v1/embeddings HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                b"Content-Length: 100\r\n\r\n"
            )
            answer = _trickle(sock, b'{"input": ["' + b"a" * 80, 0.2, 4)
        assert answer is not None and answer.startswith(b"HTTP/1.1 408"), answer
        assert b'"field":"body"' in answer.replace(b" ", b"")
        assert request("GET", srv.url + "/healthz").status == 200


@pytest.mark.parametrize("parser", ["httptools", "h11"])
def test_the_header_deadline_closes_idle_connections_with_either_parser(parser):
    """uvicorn with ``protocol_class`` (on a two-line ASGI app): an idle connection is closed after the deadline,
    a prompt request is answered and its kept-alive connection gets a fresh deadline."""
    import asyncio
    import socket
    import time

    import uvicorn

    from clipforge.serve.protocol import protocol_class
    from clipforge.testing.server import free_port

    pytest.importorskip(parser)

    async def app(scope, receive, send):
        if scope["type"] == "http":
            await send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"2")]})
            await send({"type": "http.response.body", "body": b"ok"})

    port = free_port()
    config = uvicorn.Config(
        app,
        host="127.0.0.1",
        port=port,
        http=protocol_class(0.5, parser),
        lifespan="off",
        timeout_keep_alive=30,
        log_level="warning",
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=lambda: asyncio.run(server.serve()), daemon=True)
    thread.start()
    try:
        for _ in range(100):
            if server.started:
                break
            time.sleep(0.05)
        with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
            start = time.monotonic()
            assert sock.recv(64) == b"" and time.monotonic() - start < 3
        with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
            sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            answer = b""
            while not answer.endswith(b"ok") and len(answer) < 4096:
                answer += sock.recv(1024)
            assert answer.startswith(b"HTTP/1.1 200")
            start = time.monotonic()  # kept alive (30 s) but idle: the header deadline closes it
            assert sock.recv(64) == b"" and time.monotonic() - start < 3
    finally:
        server.should_exit = True
        thread.join(10)


def test_unloadable_model_is_reported_by_readyz(tmp_path):
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "manifest.json").write_text("{")
    with ServerProcess(["-m", str(tmp_path / "broken")]).start(wait_ready=False) as srv:
        srv.wait(30, "/healthz")
        for _ in range(100):
            ready = request("GET", srv.url + "/readyz")
            if ready.json()["status"] != "loading":
                break
            threading.Event().wait(0.1)
        assert ready.status == 503 and ready.json()["status"] == "failed"
        assert "manifest" in ready.json()["error"]
        reply = post(srv, "/v1/embeddings", {"input": ["x"]})
        assert reply.status == 503 and "failed to load" in reply.json()["error"]["message"]


def test_the_serving_path_imports_neither_torch_nor_transformers(index_model):
    import subprocess
    import sys

    code = (
        "import sys; from clipforge.cli import serve; from clipforge.serve import create_app; "
        "from clipforge.serve.routes import search; from clipforge.index import Index; "
        "from clipforge.runtime.model import ZeroShotModel; m = ZeroShotModel.from_onnx(sys.argv[1]); "
        "create_app(m); m.embed_texts(['a red circle']); "
        "print([x for x in ('torch', 'transformers') if x in sys.modules])"
    )
    out = subprocess.run([sys.executable, "-c", code, str(index_model)], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"


# --- bounded work: fairness, cancellation on timeout / disconnect, drain --------------------------------------
def _big_classify(n_labels: int, n_templates: int) -> dict:
    return {
        "images": [b64(png(16, 16))],
        "labels": [f"label number {i}" for i in range(n_labels)],
        "templates": [f"a photo {j} of a {{}}." for j in range(n_templates)],
    }


def _text_items(srv) -> int:
    """Text items the server has handed to its text encoder so far."""
    text = request("GET", srv.url + "/metrics").body.decode()
    found = re.search(r'clipforge_batch_size_sum\{encoder="text"\} ([\d.]+)', text)
    return int(float(found.group(1))) if found else 0


def _wait_for_text_work(srv, start: int, timeout_s: float = 1.0) -> None:
    """Until the text encoder has run items beyond ``start`` (a big request is under way), bounded."""
    for _ in range(int(timeout_s * 20)):
        if _text_items(srv) > start + 64:
            return
        threading.Event().wait(0.05)


def _in_thread(fn):
    out = {}

    def run():
        out["start"] = time.monotonic()
        out["reply"] = fn()
        out["end"] = time.monotonic()

    thread = threading.Thread(target=run)
    thread.start()
    return thread, out


def _server_with_log(index_model, tmp_path_factory, *args):
    log = tmp_path_factory.mktemp("serve-log") / "server.log"
    srv = ServerProcess(
        ["-m", str(index_model), "--threads", "1", "--max-labels", "5000", "--max-prompts", "50000", *args],
        log_path=str(log),
    ).start()
    srv.log = log
    return srv


@pytest.fixture(scope="module")
def short_server(index_model, tmp_path_factory):
    """--timeout 2, and limits that let one classify run ~7 s of text encoding (50000 prompts)."""
    srv = _server_with_log(index_model, tmp_path_factory, "--timeout", "2")
    yield srv
    srv.stop()


@pytest.fixture(scope="module")
def draining_server(index_model, tmp_path_factory):
    """--drain 1 (the last test here stops it with SIGTERM), and the same limits as ``short_server``."""
    srv = _server_with_log(index_model, tmp_path_factory, "--drain", "1")
    yield srv
    srv.stop()


@pytest.mark.slow
def test_a_small_request_is_not_stuck_behind_a_big_classify(draining_server, model):
    srv, before = draining_server, _text_items(draining_server)
    big, big_out = _in_thread(lambda: post(srv, "/v1/classify", _big_classify(4000, 5), timeout=120))
    _wait_for_text_work(srv, before)
    small, small_out = _in_thread(lambda: post(srv, "/v1/embeddings", {"input": ["a red circle"]}, timeout=120))
    small.join(120)
    big.join(120)
    assert big_out["reply"].status == 200 and small_out["reply"].status == 200
    np.testing.assert_allclose(vectors(small_out["reply"])[0], model.embed_texts(["a red circle"])[0], atol=1e-5)
    # the small one is answered within the first half of what the big one had left when it came in
    left = big_out["end"] - small_out["start"]
    assert left > 0, "the big request was over before the small one started: nothing was measured"
    assert small_out["end"] - small_out["start"] < left / 2, (small_out, big_out)
    assert _text_items(srv) - before >= 20000  # the big one's prompts went through the text batcher


@pytest.mark.slow
def test_a_timed_out_request_stops_using_the_encoder(short_server):
    srv, before = short_server, _text_items(short_server)
    reply = post(srv, "/v1/classify", _big_classify(5000, 10), timeout=60)
    assert reply.status == 503 and "longer than 2 s" in reply.json()["error"]["message"]
    ran = _text_items(srv)
    assert ran - before < 50000
    # the model is free at once: a small request is answered (it used to wait behind the abandoned work)
    assert post(srv, "/v1/embeddings", {"input": ["a red circle"]}, timeout=60).status == 200
    threading.Event().wait(1.0)
    assert _text_items(srv) == ran + 1, "items of the timed-out request reached the encoder after its 503"


@pytest.mark.slow
def test_a_client_that_disconnects_stops_its_work(draining_server):
    import socket

    srv, before = draining_server, _text_items(draining_server)
    body = json.dumps(_big_classify(5000, 10)).encode()
    with socket.create_connection(("127.0.0.1", srv.port), timeout=10) as sock:
        sock.sendall(
            b"POST /v1/classify HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            + f"Content-Length: {len(body)}\r\n\r\n".encode()
            + body
        )
        _wait_for_text_work(srv, before)
    threading.Event().wait(0.5)
    ran = _text_items(srv)
    threading.Event().wait(1.0)
    assert _text_items(srv) == ran < before + 50000, "the work went on after the client left"
    metrics = request("GET", srv.url + "/metrics").body.decode()
    assert re.search(r'clipforge_requests_total\{endpoint="/v1/classify",method="POST",status="499"\} 1', metrics)


@pytest.mark.slow
def test_sigterm_with_a_short_drain_answers_503_without_tracebacks(draining_server):
    srv, before = draining_server, _text_items(draining_server)
    big, out = _in_thread(lambda: post(srv, "/v1/classify", _big_classify(5000, 10), timeout=60))
    _wait_for_text_work(srv, before)
    srv.terminate()
    big.join(30)
    reply = out["reply"]
    assert reply.status == 503 and reply.headers["content-type"].startswith("application/json")
    assert "shutting down" in reply.json()["error"]["message"]
    assert srv.proc.wait(20) in (0, -signal.SIGTERM)
    log = srv.log.read_text()
    assert "Traceback" not in log and "CancelledError" not in log, log[-3000:]
