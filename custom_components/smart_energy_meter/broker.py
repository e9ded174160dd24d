"""Broker settings, TLS, and short-lived connections used by the config flow."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import socket
import ssl
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from typing import Any, Final, Literal, cast

import aiomqtt
from homeassistant.const import (
    CONF_HOST,
    CONF_PASSWORD,
    CONF_PORT,
    CONF_USERNAME,
)
from homeassistant.core import HomeAssistant
from homeassistant.util.ssl import client_context

from .const import (
    CONF_CA_CERT,
    CONF_PREFIX,
    CONF_TLS,
)
from .semcore.protocol import Announce, NodeGone, Rejected, decode

_LOGGER = logging.getLogger(__name__)

# CONNACK reason codes of a refused login: MQTT 3.1.1 (4, 5) and MQTT 5 (134, 135).
_AUTH_CODES: Final = frozenset({4, 5, 134, 135})
CONNECT_TIMEOUT: Final = 10.0
# The whole connection test (name lookup, TCP, TLS, login): a form never waits longer.
CHECK_TIMEOUT: Final = 8.0
# CONNACK return codes of MQTT 3.1.1 other than a refused login.
_CONNACK_REFUSED: Final = {
    1: "the broker does not accept MQTT 3.1.1",
    2: "the broker rejected the client id",
    3: "the broker is unavailable",
}
# The first byte of a TLS record: a handshake or an alert. A plain MQTT reply never starts so.
_TLS_RECORD: Final = frozenset({0x15, 0x16})


class _DebugOnlyLog(logging.LoggerAdapter[logging.Logger]):
    """paho and aiomqtt log a dropped connection at ERROR, again on every retry.

    The hub reports outages itself (once, at INFO), so the client library's own lines are
    kept for debugging only.
    """

    def log(self, level: int, msg: object, *args: Any, **kwargs: Any) -> None:
        if self.logger.isEnabledFor(logging.DEBUG):
            self.logger.log(logging.DEBUG, msg, *args, **kwargs)


_MQTT_LOG: Final = cast(logging.Logger, _DebugOnlyLog(logging.getLogger(f"{__name__}.mqtt")))


@dataclass(frozen=True, slots=True)
class BrokerSettings:
    """One broker connection, as stored in the config entry."""

    host: str
    port: int
    username: str | None
    password: str | None
    tls: bool
    ca_cert: str | None
    prefix: str

    @classmethod
    def from_data(cls, data: Mapping[str, Any]) -> BrokerSettings:
        """Read settings from config entry data."""
        return cls(
            host=data[CONF_HOST],
            port=int(data[CONF_PORT]),
            username=data.get(CONF_USERNAME) or None,
            password=data.get(CONF_PASSWORD) or None,
            tls=bool(data.get(CONF_TLS, False)),
            ca_cert=data.get(CONF_CA_CERT) or None,
            prefix=data[CONF_PREFIX],
        )

    def as_data(self) -> dict[str, Any]:
        """Config entry data for these settings."""
        return {
            CONF_HOST: self.host,
            CONF_PORT: self.port,
            CONF_USERNAME: self.username,
            CONF_PASSWORD: self.password,
            CONF_TLS: self.tls,
            CONF_CA_CERT: self.ca_cert,
            CONF_PREFIX: self.prefix,
        }

    @property
    def unique_id(self) -> str:
        """Broker + prefix: two entries may share a broker only with different prefixes."""
        return f"{self.host}:{self.port}/{self.prefix}"

    @property
    def address(self) -> str:
        """host:port, for log lines."""
        return f"{self.host}:{self.port}"


class BrokerError(Exception):
    """Connecting failed; `key` is the translation key of the reason, the message its detail."""

    def __init__(self, key: str, detail: str) -> None:
        super().__init__(detail)
        self.key = key


def error_placeholders(settings: BrokerSettings, err: BrokerError) -> dict[str, str]:
    """What the translated text of a connection error names: where, and what happened."""
    return {
        "address": settings.address,
        "host": settings.host,
        "port": str(settings.port),
        "seconds": f"{CHECK_TIMEOUT:g}",
        "detail": str(err),
    }


def build_tls_context(settings: BrokerSettings) -> ssl.SSLContext | None:
    """Return the TLS context for the settings (blocking: loads certificates)."""
    if not settings.tls:
        return None
    if settings.ca_cert is None:
        return client_context()
    try:
        return ssl.create_default_context(cadata=settings.ca_cert)
    except (ssl.SSLError, ValueError) as err:
        raise BrokerError("invalid_ca", f"the CA certificate is not valid PEM: {err}") from err


async def async_tls_context(hass: HomeAssistant, settings: BrokerSettings) -> ssl.SSLContext | None:
    """Build the TLS context in the executor."""
    return await hass.async_add_executor_job(build_tls_context, settings)


def create_client(
    settings: BrokerSettings, tls_context: ssl.SSLContext | None, **kwargs: Any
) -> aiomqtt.Client:
    """An aiomqtt client for the settings (not yet connected)."""
    return aiomqtt.Client(
        settings.host,
        settings.port,
        username=settings.username,
        password=settings.password,
        identifier=f"sem-ha-{secrets.token_hex(4)}",
        tls_context=tls_context,
        timeout=CONNECT_TIMEOUT,
        logger=_MQTT_LOG,
        **kwargs,
    )


@contextlib.asynccontextmanager
async def connected(client: aiomqtt.Client) -> AsyncIterator[aiomqtt.Client]:
    """`async with client`, except that a cancellation never interrupts the connect.

    aiomqtt connects in an executor thread; cancelled half-way, the thread still opens the
    socket and starts a housekeeping task that nobody closes. So a cancelled connect is
    allowed to finish, then closed, and the cancellation goes on.
    """
    attempt = asyncio.ensure_future(client.__aenter__())
    try:
        # Not asyncio.shield: cancelled, it reports the attempt's later failure as an error
        # in the log, although the attempt is awaited below. wait() leaves it alone.
        await asyncio.wait((attempt,))
    except asyncio.CancelledError:
        with contextlib.suppress(aiomqtt.MqttError, OSError):
            await attempt
            await client.__aexit__(None, None, None)
        raise
    attempt.result()  # the connect's own error, if it failed
    _send_at_once(client)
    try:
        yield client
    finally:
        with contextlib.suppress(aiomqtt.MqttError):
            await client.__aexit__(None, None, None)


def _send_at_once(client: aiomqtt.Client) -> None:
    """Turn Nagle's algorithm off: with it, the kernel holds a small message back until the
    broker acknowledged the one before, a delayed ACK of 40 ms or more for each chunk of a node
    firmware update (and for a command sent right after another message)."""
    sock = client._client.socket()
    if isinstance(sock, socket.socket):  # TLS sockets too
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


def classify(err: BaseException) -> BrokerError:
    """Map a failure of the MQTT client's connection to a translated reason."""
    if isinstance(err, aiomqtt.MqttCodeError):
        code = getattr(err.rc, "value", err.rc)
        if code in _AUTH_CODES:
            return BrokerError("invalid_auth", str(err))
    # aiomqtt re-raises socket errors as MqttError "from None"; the original is the context.
    cause: BaseException | None = err
    while cause is not None:
        if isinstance(cause, ssl.SSLError | ssl.CertificateError):
            return BrokerError("tls_error", _tls_detail(cause))
        if isinstance(cause, socket.gaierror):
            return BrokerError("unknown_host", str(cause))
        if isinstance(cause, ConnectionRefusedError):
            return BrokerError("connection_refused", str(cause))
        cause = cause.__context__
    return BrokerError("cannot_connect", str(err) or type(err).__name__)


def _tls_detail(err: BaseException) -> str:
    """The short reason of a TLS failure ("unable to get local issuer certificate")."""
    # Set by the ssl module when it verifies; absent from an error made by hand.
    if message := getattr(err, "verify_message", None):
        return f"certificate verify failed: {message}"
    if reason := getattr(err, "reason", None):
        return str(reason).replace("_", " ").lower()
    return str(err) or "the server closed the connection during the handshake"


def _mqtt_string(value: str) -> bytes:
    raw = value.encode()
    return len(raw).to_bytes(2, "big") + raw


def connect_packet(settings: BrokerSettings, client_id: str) -> bytes:
    """An MQTT 3.1.1 CONNECT with the settings' login, as the client sends it."""
    flags = 0x02  # clean session
    payload = _mqtt_string(client_id)
    # As the client: a password goes only with a user name (MQTT 3.1.1).
    if settings.username is not None:
        flags |= 0x80
        payload += _mqtt_string(settings.username)
        if settings.password is not None:
            flags |= 0x40
            payload += _mqtt_string(settings.password)
    body = _mqtt_string("MQTT") + bytes([4, flags]) + (60).to_bytes(2, "big") + payload
    length = bytearray()
    remaining = len(body)
    while True:
        remaining, digit = divmod(remaining, 128)
        length.append(digit | (0x80 if remaining else 0))
        if not remaining:
            break
    return bytes([0x10]) + bytes(length) + body


async def async_check_connection(
    hass: HomeAssistant,
    settings: BrokerSettings,
    tls_context: ssl.SSLContext | Literal[False] | None = False,
) -> None:
    """Log in once (CONNECT, CONNACK, DISCONNECT) within CHECK_TIMEOUT; on failure raise a
    BrokerError that says what happened: unknown host, refused, timed out, TLS failed, not
    an MQTT broker, login refused.

    `tls_context` is the one already built for the settings; False builds it here. The
    exchange is the client's first one, done by hand, so that an answer that is not MQTT is
    told apart from silence at once (the client would wait for its timeout in both cases).
    """
    if tls_context is False:
        tls_context = await async_tls_context(hass, settings)
    try:
        async with asyncio.timeout(CHECK_TIMEOUT):
            reader, writer = await _async_open(settings, tls_context)
            try:
                writer.write(connect_packet(settings, f"sem-ha-{secrets.token_hex(4)}"))
                reply = await _async_reply(reader)
                writer.write(b"\xe0\x00")  # DISCONNECT
            finally:
                writer.close()
    except TimeoutError as err:
        raise BrokerError("timeout", f"no answer within {CHECK_TIMEOUT:g} s") from err
    _check_connack(settings, reply)
    # Closing a TLS stream waits for the peer's close_notify: not worth waiting for.
    with contextlib.suppress(OSError, TimeoutError, ssl.SSLError):
        async with asyncio.timeout(1):
            await writer.wait_closed()


async def _async_open(
    settings: BrokerSettings, tls_context: ssl.SSLContext | None
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    try:
        reader, writer = await asyncio.open_connection(settings.host, settings.port)
    except socket.gaierror as err:
        raise BrokerError("unknown_host", str(err)) from err
    except ConnectionRefusedError as err:
        raise BrokerError("connection_refused", str(err)) from err
    except OSError as err:  # no route to the host, network down
        raise BrokerError("cannot_connect", str(err)) from err
    if tls_context is None:
        return reader, writer
    try:
        await writer.start_tls(tls_context, server_hostname=settings.host)
    except (OSError, ssl.SSLError, ssl.CertificateError) as err:
        writer.close()
        raise BrokerError("tls_error", _tls_detail(err)) from err
    return reader, writer


async def _async_reply(reader: asyncio.StreamReader) -> bytes:
    """The broker's first four bytes (a CONNACK's length), or what came before it closed."""
    try:
        return await reader.readexactly(4)
    except asyncio.IncompleteReadError as err:
        return err.partial
    except OSError as err:  # reset: what a TLS listener does with a plain CONNECT
        raise BrokerError("no_answer", str(err)) from err


def _check_connack(settings: BrokerSettings, reply: bytes) -> None:
    if len(reply) == 4 and reply[:2] == b"\x20\x02":
        code = reply[3]
        if code == 0:
            return
        if code in _AUTH_CODES:
            raise BrokerError("invalid_auth", f"CONNACK return code {code}")
        refused = _CONNACK_REFUSED.get(code, f"CONNACK return code {code}")
        raise BrokerError("cannot_connect", refused)
    if not reply or (not settings.tls and reply[0] in _TLS_RECORD):
        raise BrokerError("no_answer", f"closed after {reply!r}")
    raise BrokerError("not_mqtt", f"the server answered {reply!r}")


async def async_collect_announces(
    hass: HomeAssistant, settings: BrokerSettings, seconds: float
) -> dict[str, Announce]:
    """Listen to `<prefix>/+/announce` for a while; return the live nodes' announces."""
    tls_context = await async_tls_context(hass, settings)
    announces: dict[str, Announce] = {}
    try:
        async with connected(create_client(settings, tls_context)) as client:
            await client.subscribe(f"{settings.prefix}/+/announce", qos=1)
            async with asyncio.timeout(seconds):
                async for message in client.messages:
                    decoded = decode(
                        settings.prefix,
                        message.topic.value,
                        message.payload,
                        retained=message.retain,
                    )
                    if isinstance(decoded, Announce):
                        announces[decoded.node] = decoded
                    elif isinstance(decoded, NodeGone):
                        announces.pop(decoded.node, None)
                    elif isinstance(decoded, Rejected):
                        _LOGGER.debug("Ignoring %s: %s", message.topic.value, decoded.reason)
    except TimeoutError:
        pass  # the listening window ended
    except (aiomqtt.MqttError, OSError) as err:
        raise classify(err) from err
    return announces
