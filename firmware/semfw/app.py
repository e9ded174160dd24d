"""Entry point on the ESP32: load config.json, apply the relay policy, bring up the network, run.

A configuration that cannot be used never leads to a reset loop: the node prints what is wrong on
the REPL every 30 s, keeps the relays it can trust in their power-on state, and waits.
"""

import asyncio
import os
import time

from semfw.relay import Relay, RelayBank

CONFIG_PATH = "config.json"
WATCHDOG_MS = 10000
_sleep = time.sleep  # replaceable, so the host tests can leave safe mode


def safe_mode(errors, relays):
    from semfw import hw

    bank = RelayBank(
        [Relay(r.id, r.pair, hw.RelayPin(r.pin), r.active_high, r.power_on) for r in relays],
        hw.FileStore(),
    )
    bank.power_on()
    while True:
        print("semfw: the configuration cannot be used; the node is idle.")
        for error in errors:
            print("  - " + error)
        print("  Fix %s (for example with mpremote) and reset the board." % CONFIG_PATH)
        _sleep(30)


async def _run(cfg):
    from semfw import hw
    from semfw.node import Node

    hardware = hw.Hardware(watchdog_ms=WATCHDOG_MS if cfg.watchdog else None)
    node = Node(cfg, hardware)
    node.boot()
    hardware.nic = await hw.bring_up(cfg.network)
    address = hw.time_server(cfg.ntp)  # may block on DNS: before the watchdog is armed
    asyncio.create_task(hw.keep_time(cfg.ntp, address))
    hardware.arm_watchdog()
    node.start()
    await asyncio.Event().wait()  # the node's tasks run forever


def load_config(path, mac):
    """The validated configuration; on any problem, safe mode (which never returns)."""
    from semfw import config

    try:
        with open(path) as f:
            text = f.read()
    except OSError as err:
        safe_mode(["cannot read %s (%s)" % (path, err)], [])
    try:
        cfg = config.load(text, mac)
    except config.ConfigError as err:
        safe_mode(err.errors, err.relays)
    config.forget()
    if cfg.broker_tls is not None:
        try:
            os.stat(cfg.broker_tls[0])
        except OSError:
            safe_mode(
                [
                    "broker: the CA certificate %r is not on the board (copy it with mpremote "
                    "cp ca.crt :%s)" % (cfg.broker_tls[0], cfg.broker_tls[0])
                ],
                cfg.relays,
            )
    return cfg


def main(path=CONFIG_PATH):
    from semfw import hw

    cfg = load_config(path, hw.base_mac())
    for warning in cfg.warnings:
        print("semfw: config: " + warning)
    print("semfw: node %s, %d meters, %d relays" % (cfg.node, len(cfg.meters), len(cfg.relays)))
    asyncio.run(_run(cfg))
