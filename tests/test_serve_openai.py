"""``/v1/embeddings`` through the official ``openai`` SDK with its default arguments (it asks for base64 and
decodes it itself), against a real uvicorn subprocess: the rows equal the in-process runtime, base64 equals
float bit for bit, and what the server cannot honour (other ``dimensions``, token-id arrays) is a 4xx naming
the field."""

from __future__ import annotations

import base64

import numpy as np
import pytest

pytest.importorskip("fastapi")
pytest.importorskip("uvicorn")
openai = pytest.importorskip("openai")

from clipforge.testing.server import ServerProcess, request  # noqa: E402

KEY = "sdk-k3y"
TEXTS = ["a red circle", "a photo of a blue square.", "yellow"]


@pytest.fixture(scope="module")
def server(index_model):
    with ServerProcess(["-m", str(index_model), "--threads", "1"], env={"CLIPFORGE_API_KEY": KEY}) as srv:
        yield srv


@pytest.fixture(scope="module")
def client(server):
    return openai.OpenAI(base_url=server.url + "/v1", api_key=KEY, max_retries=0, timeout=60)


@pytest.fixture(scope="module")
def photos(shapes_dataset):
    files = sorted(p for p in (shapes_dataset.root / "test").rglob("*") if p.is_file())
    return [p.read_bytes() for p in files[:: len(files) // 3][:3]]


def _cosines(got, expected) -> np.ndarray:
    got = np.asarray(got, np.float64)
    got /= np.linalg.norm(got, axis=1, keepdims=True)
    return (got * expected).sum(axis=1)


def test_sdk_default_call_equals_the_runtime(client, loaded_model):
    out = client.embeddings.create(model="text-embedding-3-small", input=TEXTS)
    assert [d.index for d in out.data] == [0, 1, 2]
    assert _cosines([d.embedding for d in out.data], loaded_model.embed_texts(TEXTS)).min() >= 0.99999
    assert out.model == "clip"  # the request's model name is ignored; the answer names the served model
    tokens = sum(len(ids) for ids in loaded_model.tokenizer.ids(TEXTS)[0])
    assert out.usage.prompt_tokens == out.usage.total_tokens == tokens > len(TEXTS) * 2
    one = client.embeddings.create(
        model="x", input="a red circle", user="someone", dimensions=loaded_model.manifest.embed_dim
    )
    np.testing.assert_array_equal(one.data[0].embedding, out.data[0].embedding)


def test_sdk_images_via_extra_body(client, loaded_model, photos):
    inputs = ["data:image/png;base64," + base64.b64encode(photos[0]).decode(), base64.b64encode(photos[1]).decode()]
    out = client.embeddings.create(model="x", input=inputs, extra_body={"modality": "image"})
    assert _cosines([d.embedding for d in out.data], loaded_model.embed_images(photos[:2])).min() >= 0.99999
    assert out.usage.prompt_tokens == 0


def test_base64_equals_float_bit_for_bit(server):
    auth = {"Authorization": f"Bearer {KEY}"}
    rows = {}
    for fmt in ("float", "base64"):
        reply = request(
            "POST", server.url + "/v1/embeddings", json_body={"input": TEXTS, "encoding_format": fmt}, headers=auth
        )
        assert reply.status == 200, reply.body
        rows[fmt] = [d["embedding"] for d in reply.json()["data"]]
    floats = np.array(rows["float"], np.float32)
    decoded = np.stack([np.frombuffer(base64.b64decode(s), dtype="<f4") for s in rows["base64"]])
    assert floats.tobytes() == decoded.tobytes()


@pytest.mark.parametrize(
    "kwargs, field",
    [
        ({"input": ["a red circle"], "dimensions": 7}, "dimensions"),
        ({"input": [1, 2, 3]}, "input"),
        ({"input": [[1, 2, 3], [4, 5]]}, "input"),
        ({"input": ["a red circle"], "encoding_format": "int8"}, "encoding_format"),
    ],
)
def test_what_the_server_cannot_honour_is_a_4xx_naming_the_field(client, kwargs, field):
    with pytest.raises(openai.APIStatusError) as caught:
        client.embeddings.create(model="x", **kwargs)
    assert 400 <= caught.value.status_code < 500
    error = caught.value.body  # the SDK unwraps {"error": {...}}
    assert error["field"] == field
    if field == "input":
        assert "token" in error["message"] and "string" in error["message"]


def test_langchain_openai_embeddings(server, loaded_model):
    lc = pytest.importorskip("langchain_openai", reason="langchain-openai is not installed")
    # check_embedding_ctx_length=False: send texts, not tiktoken ids (the server tokenizes with its own tokenizer)
    emb = lc.OpenAIEmbeddings(
        base_url=server.url + "/v1", api_key=KEY, model="clip", check_embedding_ctx_length=False, max_retries=0
    )
    got = emb.embed_documents(TEXTS)
    assert _cosines(got, loaded_model.embed_texts(TEXTS)).min() >= 0.99999
    assert _cosines([emb.embed_query(TEXTS[0])], loaded_model.embed_texts(TEXTS[:1])).min() >= 0.99999
