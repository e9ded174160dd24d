"""Broker settings, TLS, and short-lived connections used by the config flow."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
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
    """Connecting failed; `key` is the translation key of the reason."""

    def __init__(self, key: str, detail: str) -> None:
        super().__init__(detail)
        self.key = key


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
    try:
        yield client
    finally:
        with contextlib.suppress(aiomqtt.MqttError):
            await client.__aexit__(None, None, None)


def classify(err: BaseException) -> BrokerError:
    """Map a connection failure to a translated reason."""
    if isinstance(err, aiomqtt.MqttCodeError):
        code = getattr(err.rc, "value", err.rc)
        if code in _AUTH_CODES:
            return BrokerError("invalid_auth", str(err))
    # aiomqtt re-raises socket errors as MqttError "from None"; the original is the context.
    cause: BaseException | None = err
    while cause is not None:
        if isinstance(cause, ssl.SSLError | ssl.CertificateError):
            return BrokerError("tls_error", str(cause))
        cause = cause.__context__
    return BrokerError("cannot_connect", str(err) or type(err).__name__)


async def async_check_connection(
    hass: HomeAssistant,
    settings: BrokerSettings,
    tls_context: ssl.SSLContext | Literal[False] | None = False,
) -> None:
    """Connect once and disconnect; raise BrokerError with the reason on failure.

    `tls_context` is the one already built for the settings; False builds it here.
    """
    if tls_context is False:
        tls_context = await async_tls_context(hass, settings)
    try:
        async with connected(create_client(settings, tls_context)):
            pass
    except (aiomqtt.MqttError, OSError) as err:
        raise classify(err) from err


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
