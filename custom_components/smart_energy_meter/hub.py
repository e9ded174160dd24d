"""The entry's MQTT connection: one aiomqtt client in a background task, reconnecting."""

from __future__ import annotations

import asyncio
import logging
import ssl
from collections.abc import Callable, Iterable
from typing import Final

import aiomqtt
from homeassistant.config_entries import ConfigEntry
from homeassistant.core import CALLBACK_TYPE, HomeAssistant, callback

from .broker import BrokerSettings, classify, connected, create_client

_LOGGER = logging.getLogger(__name__)

BACKOFF_MIN: Final = 1.0
BACKOFF_MAX: Final = 60.0
KEEPALIVE: Final = 30

type MessageHandler = Callable[[str, bytes, bool], None]


class NotConnectedError(Exception):
    """A publish was attempted while the broker is not connected."""


def _direct_inbox(
    deliver: Callable[[aiomqtt.Message], None],
) -> type[asyncio.Queue[aiomqtt.Message]]:
    """A stand-in for the client's incoming-message queue that hands each message on as it is
    read.

    aiomqtt queues every message and hands each out through a task of its own and another pass
    of the event loop, which costs as much as decoding it. Handled where it is read, in order,
    the queue stays empty, and iterating the client's messages only waits for the disconnect.
    """

    class DirectInbox(asyncio.Queue[aiomqtt.Message]):
        def put_nowait(self, item: aiomqtt.Message) -> None:
            deliver(item)

    return DirectInbox


class Hub:
    """Keeps one connection to the broker alive and hands every message to a handler."""

    def __init__(
        self,
        hass: HomeAssistant,
        settings: BrokerSettings,
        tls_context: ssl.SSLContext | None,
        on_message: MessageHandler,
    ) -> None:
        self._hass = hass
        self._settings = settings
        self._tls_context = tls_context
        self._topics: tuple[str, ...] = ()
        self._on_message = on_message
        self._client: aiomqtt.Client | None = None
        self._task: asyncio.Task[None] | None = None
        self._listeners: list[Callable[[], None]] = []
        self._outage_logged = False
        self._entry: ConfigEntry | None = None
        self._reauth_started = False

    @property
    def connected(self) -> bool:
        """True while subscribed and receiving."""
        return self._client is not None

    @callback
    def async_add_listener(self, listener: Callable[[], None]) -> CALLBACK_TYPE:
        """Call `listener` whenever the connection comes up or goes down."""
        self._listeners.append(listener)
        return lambda: self._listeners.remove(listener)

    @callback
    def async_start(self, entry: ConfigEntry, topics: Iterable[str]) -> None:
        """Subscribe to `topics` on every (re)connect, in a task owned by the config entry."""
        self._topics = tuple(dict.fromkeys(topics))
        self._entry = entry
        self._task = entry.async_create_background_task(
            self._hass, self._run(), f"smart_energy_meter broker {self._settings.address}"
        )

    async def async_add_topics(self, topics: Iterable[str]) -> None:
        """Subscribe to more topics (a pair added while running): now, and on every reconnect."""
        new = tuple(topic for topic in dict.fromkeys(topics) if topic not in self._topics)
        self._topics += new
        if (client := self._client) is None:
            return  # the next connection subscribes to them with the others
        try:
            for topic in new:
                await client.subscribe(topic, qos=1)
        except aiomqtt.MqttError as err:
            # The connection is going: the next one subscribes to them with the others.
            _LOGGER.debug("Subscribing to new topics failed: %s", err)

    async def async_stop(self) -> None:
        """Cancel the connection task and wait until the client is closed."""
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None

    async def async_publish(
        self, topic: str, payload: bytes, *, retain: bool = False, qos: int = 1
    ) -> None:
        """Publish (QoS 1 unless told); raise NotConnectedError when the broker is not there."""
        if self._client is None:
            raise NotConnectedError(self._settings.address)
        try:
            await self._client.publish(topic, payload, qos=qos, retain=retain)
        except aiomqtt.MqttError as err:
            raise NotConnectedError(str(err)) from err

    async def _run(self) -> None:
        backoff = BACKOFF_MIN
        while True:
            try:
                client = create_client(
                    self._settings,
                    self._tls_context,
                    keepalive=KEEPALIVE,
                    queue_type=_direct_inbox(self._dispatch),
                )
                async with connected(client):
                    for topic in self._topics:
                        await client.subscribe(topic, qos=1)
                    self._set_client(client)
                    backoff = BACKOFF_MIN
                    # The inbox handles every message as it is read: this ends with the
                    # connection (MqttError), never with a message.
                    async for _ in client.messages:
                        pass
            except (aiomqtt.MqttError, OSError) as err:
                self._log_outage(err)
            finally:
                self._set_client(None)
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, BACKOFF_MAX)

    def _dispatch(self, message: aiomqtt.Message) -> None:
        topic = message.topic.value
        try:
            self._on_message(topic, message.payload, message.retain)
        except Exception:
            # One bad message must not end the connection that serves every meter.
            _LOGGER.exception("Error handling a message on %s", topic)

    def _log_outage(self, err: BaseException) -> None:
        reason = classify(err)
        if reason.key == "invalid_auth" and not self._reauth_started and self._entry:
            # The broker refused the stored login: ask for new credentials, once per outage.
            self._reauth_started = True
            self._entry.async_start_reauth(self._hass)
        if self._outage_logged:
            _LOGGER.debug("Broker %s still unavailable: %s", self._settings.address, reason)
            return
        self._outage_logged = True
        _LOGGER.info(
            "Broker %s is unavailable (%s: %s); retrying in the background",
            self._settings.address,
            reason.key,
            reason,
        )

    def _set_client(self, client: aiomqtt.Client | None) -> None:
        if client is self._client:
            return
        self._client = client
        if client is not None:
            self._reauth_started = False
            if self._outage_logged:
                _LOGGER.info("Broker %s is available again", self._settings.address)
                self._outage_logged = False
            else:
                _LOGGER.debug("Connected to broker %s", self._settings.address)
        for listener in list(self._listeners):
            listener()
