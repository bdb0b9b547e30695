"""A database password never shows: not in CLI errors (index, search, dedup, serve), not in the server's log,
not in any endpoint (/readyz, /healthz, /v1/info, /metrics), whatever form the location takes (URL userinfo,
with an unencoded '@', percent-encoded, ``password=`` in the query in any case, a libpq key=value string, a
malformed URI that the driver quotes in full, another scheme)."""

from __future__ import annotations

import time

import pytest

from clipforge._dblocation import is_postgres, redact, secrets_of
from clipforge.cli.main import main

SECRET = "Sup3r-S3cret@pw"
TAIL = "@pw"  # what libpq shows as part of the host when it splits the userinfo at the first '@'
LOCATIONS = [
    f"postgresql://me:{SECRET}@127.0.0.1:1/photos",
    "postgresql://me:Sup3r-S3cret%40pw@127.0.0.1:1/photos",
    f"postgresql://me@127.0.0.1:1/photos?password={SECRET}",
    f"postgres://me@127.0.0.1:1/photos?sslmode=disable&PassWord={SECRET}&connect_timeout=2",
    f"postgresql://me:{SECRET}@[::1/photos",  # malformed: psycopg's message quotes the whole URI
    "postgresql://me:Sup3r-S3cret%40pw@[::1/photos",
    f"host=127.0.0.1 port=1 dbname=photos password={SECRET}",
    f"host=127.0.0.1 port=1 password='{SECRET}' bogus=1",
    f"mysql://root:{SECRET}@127.0.0.1/photos",
]


def _leaks(text: str) -> list[str]:
    return [s for s in (SECRET, "Sup3r-S3cret", "Sup3r-S3cret%40pw", TAIL, "pw@") if s in text]


@pytest.mark.parametrize("location", LOCATIONS)
def test_redact_hides_every_form(location):
    shown = redact(location)
    assert not _leaks(shown), shown
    assert "***" in shown
    assert SECRET in secrets_of(location) or "Sup3r-S3cret%40pw" in secrets_of(location)


def test_redact_scrubs_driver_messages_and_keeps_the_rest():
    url = f"postgresql://me:{SECRET}@127.0.0.1:1/photos"
    message = "failed to resolve host 'pw@127.0.0.1': [Errno -2] Name or service not known"
    assert (
        redact(message, secrets_of(url)) == "failed to resolve host '***@127.0.0.1': [Errno -2] Name or "
        "service not known"
    )
    assert redact("postgresql://me@h/db") == "postgresql://me@h/db" and redact("/photos/x.db") == "/photos/x.db"
    assert is_postgres("host=h dbname=x") and is_postgres("postgres://h/x") and not is_postgres("/tmp/x.db")


@pytest.mark.parametrize("location", LOCATIONS)
def test_cli_errors_never_show_the_password(location, index_model, tmp_path, capsys):
    commands = [
        ["index", str(tmp_path), "--db", location, "-m", str(index_model), "--quiet"],
        ["search", "a red circle", "--db", location],
        ["dedup", "--db", location],
    ]
    for args in commands:
        code = main(args)
        err = capsys.readouterr().err
        assert code == 2, (args, err)
        assert not _leaks(err), err
        assert len(err.strip().splitlines()) == 1, err
    assert list(tmp_path.iterdir()) == []  # a key=value string is not taken for a SQLite file name


@pytest.mark.slow
def test_a_password_with_an_unencoded_at_is_explained(capsys):
    assert main(["search", "x", "--db", LOCATIONS[0]]) == 2
    err = capsys.readouterr().err
    assert "unencoded '@'" in err and "%40" in err and "postgresql://me:***@127.0.0.1:1/photos" in err, err


@pytest.mark.slow
@pytest.mark.parametrize("location", [LOCATIONS[2], LOCATIONS[4], LOCATIONS[6]])
def test_server_log_and_endpoints_never_show_the_password(location, index_model, tmp_path):
    pytest.importorskip("uvicorn")
    from clipforge.testing.server import ServerProcess, request

    log = tmp_path / "server.log"
    key = {"Authorization": "Bearer k3y"}
    with ServerProcess(
        ["-m", str(index_model), "--db", location, "--api-key", "k3y", "--threads", "1"], log_path=str(log)
    ).start(wait_ready=False) as srv:
        deadline = time.monotonic() + 60
        while request("GET", srv.url + "/readyz").json()["status"] == "loading" and time.monotonic() < deadline:
            time.sleep(0.1)
        replies = {
            path: request("GET", srv.url + path, headers=key)
            for path in ("/readyz", "/healthz", "/v1/info", "/metrics")
        }
    assert replies["/readyz"].json()["status"] == "failed", replies["/readyz"].body
    for path, reply in replies.items():
        body = reply.body.decode()
        assert not _leaks(body), (path, body)
    text = log.read_text()
    assert "failed to load" in text and not _leaks(text), text
