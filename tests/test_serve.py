"""`assistant serve` as a user starts it: the port checked first, the login from a file, TLS, and only
its own Host and Origin answered (DNS rebinding)."""

from __future__ import annotations

import base64
import http.client
import json
import os
import socket
import ssl
import subprocess
import sys
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from harness.servers import free_port, running
from tests.helpers.cli import child_env
from tests.helpers.fake_app import FakeApp, launch_nothing

LOGIN = ("ann", "s3cret pw")
STARTUP_SECONDS = 120  # loading models on 2 shared cores; bounded all the same

# `assistant ARGS`, then the heavy libraries it had loaded: a refusal must come before any of them.
PROBE = """
import sys
from assistant.cli import main
code = main(sys.argv[1:])
print(",".join(m for m in ("chromadb", "onnxruntime", "llama_cpp") if m in sys.modules))
sys.exit(code)
"""


def probe(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """Run `assistant ARGS` in a child; its stdout is the heavy libraries it loaded."""
    return subprocess.run(
        [sys.executable, "-c", PROBE, *args],
        capture_output=True,
        text=True,
        env=child_env() | {"ASSISTANT_LLM": "extractive"} | (env or {}),
        timeout=300,
    )


# --- the port, checked before anything slow loads -------------------------------------------


@pytest.mark.slow
def test_a_port_in_use_is_one_line_before_any_model_loads(seed_store: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        out = probe("serve", "--store", str(seed_store), "--port", str(port))
    assert (out.returncode, out.stdout) == (1, "\n"), out.stderr  # nothing heavy was loaded
    assert out.stderr == (
        f"assistant: error: port {port} on 127.0.0.1 is in use: stop what listens there, "
        "or give another --port\n"
    )


@pytest.mark.slow
def test_a_port_out_of_range_is_one_line(seed_store: Path) -> None:
    out = probe("serve", "--store", str(seed_store), "--port", "99999")
    assert (out.returncode, out.stdout) == (1, "\n"), out.stderr
    assert out.stderr == "assistant: error: --port 99999: give a port from 1 to 65535\n"


@pytest.mark.slow
def test_an_address_not_of_this_machine_is_one_line(seed_store: Path) -> None:
    # 192.0.2.0/24 is TEST-NET-1: never assigned, so never an address of this machine.
    out = probe("serve", "--store", str(seed_store), "--host", "192.0.2.7", "--insecure")
    assert (out.returncode, out.stdout) == (1, "\n"), out.stderr
    assert out.stderr.startswith("assistant: error: cannot listen on 192.0.2.7:7860 (")
    assert out.stderr.count("\n") == 1 and "give another --host" in out.stderr


# --- the login from a file (or the environment), and TLS -------------------------------------


def login_file(path: Path, text: str = ":".join(LOGIN) + "\n", mode: int = 0o600) -> Path:
    path.write_text(text, encoding="utf-8")
    path.chmod(mode)
    return path


def self_signed(folder: Path) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1 signed by its own key, and that key: made here, valid for a day."""
    import datetime as dt
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "arxiv-assistant test")])
    now = dt.datetime.now(dt.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), False
        )
        .sign(key, hashes.SHA256())
    )
    cert, private = folder / "cert.pem", folder / "key.pem"
    cert.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    private.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    private.chmod(0o600)
    return cert, private


def serve_env() -> dict[str, str]:
    """A served chat's environment: extractive answers, no developer or Gradio settings."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ASSISTANT_", "GRADIO_", "OPENAI_"))}
    return env | {"ASSISTANT_LLM": "extractive", "PYTHONPATH": child_env()["PYTHONPATH"]}


@pytest.fixture(scope="module")
def tls_server(seed_store: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Any]]:
    """`assistant serve --mcp --auth-file F --ssl-certfile C --ssl-keyfile K`; yields its URL and a
    TLS context that trusts only its certificate."""
    folder = tmp_path_factory.mktemp("tls")
    cert, key = self_signed(folder)
    port = free_port()
    argv = [sys.executable, "-m", "assistant", "serve", "--store", str(seed_store), "--port", str(port)]
    argv += ["--mcp", "--auth-file", str(login_file(folder / "login")), "--ssl-certfile", str(cert)]
    argv += ["--ssl-keyfile", str(key)]
    context = ssl.create_default_context(cafile=str(cert))
    url = f"https://127.0.0.1:{port}/"
    with running(argv, url, folder / "serve.log", STARTUP_SECONDS, context=context, env=serve_env()):
        yield url, context


def basic(user: str, password: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}


def sign_in(url: str, context: ssl.SSLContext, user: str, password: str) -> int:
    """POST the page's login form; return the HTTP status (200 signed in, 400 refused)."""
    form = urllib.parse.urlencode({"username": user, "password": password}).encode()
    try:
        with urllib.request.urlopen(url + "login", data=form, timeout=60, context=context) as response:
            assert response.headers.get_all("Set-Cookie"), "signed in without a session cookie"
            return int(response.status)
    except urllib.error.HTTPError as refused:
        return int(refused.code)


@pytest.mark.slow
def test_the_login_from_a_file_is_asked_over_tls(tls_server: tuple[str, Any]) -> None:
    url, context = tls_server
    # TLS with the certificate made above (the context trusts nothing else), and nothing in clear text.
    with urllib.request.urlopen(url, timeout=60, context=context) as page:
        assert page.status == 200
    with pytest.raises((OSError, http.client.HTTPException)):
        urllib.request.urlopen(url.replace("https://", "http://"), timeout=30).read()
    # The login is the one in the file: the page's, the API's and the MCP server's.
    assert sign_in(url, context, "ann", "wrong") == 400
    assert sign_in(url, context, *LOGIN) == 200
    mcp = url + "gradio_api/mcp/schema"
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(mcp, timeout=60, context=context)
    assert refused.value.code == 401
    request = urllib.request.Request(mcp, headers=basic(*LOGIN))
    with urllib.request.urlopen(request, timeout=60, context=context) as schema:
        assert "get_paper" in schema.read().decode()
    from gradio_client import Client

    with pytest.raises(Exception, match="(?i)login|credentials|unauthori"):
        Client(url, verbose=False, ssl_verify=False).predict("2007.05105", api_name="/get_paper")
    client = Client(url, auth=LOGIN, verbose=False, ssl_verify=False)
    assert json.loads(client.predict("2007.05105", api_name="/get_paper"))["arxiv_id"] == "2007.05105"


@pytest.mark.slow
@pytest.mark.parametrize("mode", [0o644, 0o640, 0o604], ids=["0644", "0640", "0604"])
def test_a_login_file_others_can_read_is_refused(seed_store: Path, tmp_path: Path, mode: int) -> None:
    path = login_file(tmp_path / "login", mode=mode)
    out = probe("serve", "--store", str(seed_store), "--port", str(free_port()), "--auth-file", str(path))
    assert (out.returncode, out.stdout) == (1, "\n"), out.stderr
    assert out.stderr == (
        f"assistant: error: --auth-file {str(path)!r}: permissions {mode:04o} are too open (group or "
        f"others can read the password); run chmod 600 {str(path)!r}\n"
    )
    assert "s3cret" not in out.stderr


@pytest.fixture
def no_server(monkeypatch: pytest.MonkeyPatch) -> type[FakeApp]:
    """Make `serve` load nothing and launch a recorder."""
    return launch_nothing(monkeypatch)


def test_the_login_and_tls_reach_gradio(
    no_server: type[FakeApp],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from assistant.cli import main

    cert, key = self_signed(tmp_path)
    path = login_file(tmp_path / "login", "ann:pw:with:colons\n")
    tls = ["--ssl-certfile", str(cert), "--ssl-keyfile", str(key)]
    assert main(["serve", "--host", "0.0.0.0", "--auth-file", str(path), *tls]) == 0
    launched = no_server.launched
    assert launched["auth"] == ("ann", "pw:with:colons")
    assert (launched["ssl_certfile"], launched["ssl_keyfile"]) == (str(cert), str(key))
    assert "serving on https://0.0.0.0:" in capsys.readouterr().err

    monkeypatch.setenv("ASSISTANT_AUTH", "bob:from env")
    assert main(["serve", "--host", "0.0.0.0"]) == 0
    assert no_server.launched["auth"] == ("bob", "from env")
    assert no_server.launched["ssl_certfile"] is None
    assert main(["serve", "--host", "0.0.0.0", "--auth", "cid:flag"]) == 0  # a flag wins over the env
    assert no_server.launched["auth"] == ("cid", "flag")


@pytest.mark.parametrize(
    ("argv", "env", "says"),
    [
        (["--auth", "a:b", "--auth-file", "{login}"], {}, "give --auth or --auth-file, not both"),
        (["--auth-file", "{missing}"], {}, "cannot read it (No such file or directory)"),
        (["--auth-file", "{empty}"], {}, "must hold one line USER:PASSWORD, both non-empty"),
        ([], {"ASSISTANT_AUTH": "nopassword"}, "$ASSISTANT_AUTH must be USER:PASSWORD, both non-empty"),
        (["--ssl-keyfile", "{login}"], {}, "--ssl-keyfile needs --ssl-certfile"),
        (["--ssl-certfile", "{missing}"], {}, "cannot read it (No such file or directory); give a PEM file"),
    ],
)
def test_a_bad_login_or_tls_file_is_one_line(
    no_server: type[FakeApp],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    argv: list[str],
    env: dict[str, str],
    says: str,
) -> None:
    from assistant.cli import main

    files = {"login": login_file(tmp_path / "login"), "empty": login_file(tmp_path / "empty", "\n")}
    names = {k: str(v) for k, v in files.items()} | {"missing": str(tmp_path / "missing")}
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    assert main(["serve", *(arg.format(**names) for arg in argv)]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("assistant: error: ") and says in err, err
    assert no_server.launched == {}


# --- only its own Host and Origin: DNS rebinding --------------------------------------------

ALLOWED = "chat.internal"  # given with --allowed-host
INITIALIZE = json.dumps(
    {
        "jsonrpc": "2.0",
        "id": 1,
        "method": "initialize",
        "params": {
            "protocolVersion": "2025-03-26",
            "capabilities": {},
            "clientInfo": {"name": "t", "version": "0"},
        },
    }
).encode()
MCP_HEADERS = {"Content-Type": "application/json", "Accept": "application/json, text/event-stream"}


@pytest.fixture(scope="module")
def open_server(seed_store: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[int]:
    """`assistant serve --mcp` on 127.0.0.1 without a login (as a user runs it at home); yields the port."""
    port = free_port()
    argv = [sys.executable, "-m", "assistant", "serve", "--store", str(seed_store), "--port", str(port)]
    argv += ["--mcp", "--allowed-host", ALLOWED]
    log = tmp_path_factory.mktemp("open") / "serve.log"
    with running(argv, f"http://127.0.0.1:{port}/", log, STARTUP_SECONDS, env=serve_env()):
        yield port


def status(
    port: int,
    method: str,
    path: str,
    host: str,
    origin: str | None = None,
    body: bytes | None = None,
    headers: dict[str, str] | None = None,
) -> int:
    """Send one request to 127.0.0.1:`port` with exactly this `Host` (and `Origin`); return its status."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    try:
        connection.putrequest(method, path, skip_host=True, skip_accept_encoding=True)
        connection.putheader("Host", host)
        for name, value in (headers or {}).items() | ({"Origin": origin}.items() if origin else set()):
            connection.putheader(name, value)
        if body is not None:
            connection.putheader("Content-Length", str(len(body)))
        connection.endheaders(body)
        return connection.getresponse().status  # the body (an event stream for MCP) is not waited for
    finally:
        connection.close()


@pytest.mark.slow
def test_a_rebound_name_cannot_reach_the_mcp_tools(open_server: int) -> None:
    port = open_server
    own, attacker = f"127.0.0.1:{port}", f"attacker.example:{port}"

    def initialize(host: str, origin: str | None) -> int:
        return status(port, "POST", "/gradio_api/mcp/", host, origin, INITIALIZE, MCP_HEADERS)

    # What the issue reproduced: a rebound name, sent from its own page.
    assert initialize(attacker, f"http://{attacker}") == 403
    assert initialize(attacker, None) == 403
    assert initialize(own, f"http://{attacker}") == 403  # the real name, another site's page
    assert initialize(own, "null") == 403  # a sandboxed frame or a file
    # The same request from the server's own names is answered.
    assert initialize(own, None) == 200
    assert initialize(own, f"http://{own}") == 200
    assert initialize(f"localhost:{port}", f"http://localhost:{port}") == 200


@pytest.mark.slow
def test_a_rebound_name_cannot_reach_the_page_or_its_api(open_server: int) -> None:
    port = open_server
    for host in (
        f"attacker.example:{port}",
        "attacker.example",
        f"127.0.0.1.nip.io:{port}",
        f"127.0.0.1:{port + 1}",
        "",
    ):
        assert status(port, "GET", "/", host) == 403, host
    assert status(port, "GET", "/gradio_api/info", f"evil.example:{port}") == 403
    for host in (f"127.0.0.1:{port}", f"localhost:{port}", f"[::1]:{port}", ALLOWED, f"{ALLOWED}:{port}"):
        assert status(port, "GET", "/", host) == 200, host
    join = json.dumps({"data": ["hi"], "fn_index": 0, "session_hash": "x"}).encode()
    forged = status(
        port, "POST", "/gradio_api/queue/join", f"127.0.0.1:{port}", "http://attacker.example", join,
        {"Content-Type": "application/json"},
    )  # fmt: skip
    assert forged == 403


@pytest.mark.slow
def test_real_clients_still_work(open_server: int) -> None:
    from gradio_client import Client

    from tests.helpers.mcp import TOOL_NAMES, session

    port = open_server
    tools, (paper,) = session(
        f"http://127.0.0.1:{port}/gradio_api/mcp/", [("get_paper", {"arxiv_id": "2007.05105"})], None
    )
    assert {t.name for t in tools} == TOOL_NAMES and not paper.isError
    for url in (f"http://127.0.0.1:{port}/", f"http://localhost:{port}/"):
        result = Client(url, verbose=False).predict(message="What is AdaScale SGD?", api_name="/chat")
        assert result["citations"][0] == "2007.05105", url


def test_the_names_a_server_answers_to() -> None:
    from assistant.errors import ConfigError
    from assistant.web.hosts import Hosts

    loopback = Hosts.served("127.0.0.1", 7860, tls=False, allowed=["chat.example.org", "proxy:8443"])
    assert all(
        loopback.allows(h) for h in ("127.0.0.1:7860", "LOCALHOST:7860", "[::1]:7860", "localhost.:7860")
    )
    assert all(loopback.allows(h) for h in ("chat.example.org", "chat.example.org:443", "proxy:8443"))
    assert not any(
        loopback.allows(h)
        for h in ("127.0.0.1:7861", "proxy:8444", "evil.example:7860", "127.0.0.1", "user@127.0.0.1:7860", "")
    )
    assert loopback.allows_origin("http://localhost:7860") and loopback.allows_origin(
        "https://chat.example.org"
    )
    assert not any(
        loopback.allows_origin(o)
        for o in ("null", "http://evil.example:7860", "file://", "http://127.0.0.1:7860/x")
    )
    tls = Hosts.served("127.0.0.1", 443, tls=True)
    assert (
        tls.allows("127.0.0.1") and tls.allows_origin("https://localhost") and not tls.allows("127.0.0.1:80")
    )
    everywhere = Hosts.served("0.0.0.0", 7860, tls=False)
    assert everywhere.allows("192.168.1.20:7860") and everywhere.allows(f"{socket.gethostname()}:7860")
    assert not everywhere.allows("evil.example:7860") and not everywhere.allows("192.168.1.20:7861")
    one = Hosts.served("192.168.1.20", 7860, tls=False)
    assert one.allows("192.168.1.20:7860") and not one.allows("localhost:7860")
    with pytest.raises(ConfigError, match="--allowed-host 'a b'"):
        Hosts.served("127.0.0.1", 7860, tls=False, allowed=["a b"])
