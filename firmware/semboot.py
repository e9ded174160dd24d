"""Chooses at every boot which copy of the firmware runs, and goes back when a new one fails.

The firmware copied by hand lives in `/semfw`. An update (semfw.update) writes a complete new
copy into one of two slots, `fw/a/semfw` or `fw/b/semfw`, verifies it, and records it here as
on trial. The next boot runs the trial once; the new firmware confirms itself once it has
connected to the broker and announced. When it does not, within its time limit, because it
crashed at import, never connected, or the watchdog fired, the boot after that runs the
previous copy again by itself and records why.

This module is never replaced by an update (it decides what runs, so it must not be the thing
that fails); its state file format is therefore fixed. The state is written to a temporary file
renamed over the old one, so a power cut leaves the old state or the new one.
"""

import json
import os
import sys

STATE = "fw/boot.json"
SLOTS = ("fw/a", "fw/b")
CONFIRM_S = 120  # default time a new firmware has to connect and announce


def read_state(path=STATE):
    """The stored state, normalised: anything unreadable counts as "run the copy at /"."""
    try:
        with open(path) as f:
            raw = json.loads(f.read())
    except (OSError, ValueError):
        raw = None
    if not isinstance(raw, dict):
        raw = {}
    active = raw.get("active")
    if active not in SLOTS:
        active = ""
    trial = raw.get("trial")
    if trial not in SLOTS or trial == active:
        trial = None
    last = raw.get("last")
    confirm_s = raw.get("confirm_s")
    if not isinstance(confirm_s, int) or not 5 <= confirm_s <= 3600:
        confirm_s = CONFIRM_S
    return {
        "active": active,
        "trial": trial,
        "tried": raw.get("tried") is True,
        "id": raw.get("id") if isinstance(raw.get("id"), str) else "",
        "version": raw.get("version") if isinstance(raw.get("version"), str) else "",
        "confirm_s": confirm_s,
        "error": raw.get("error") if isinstance(raw.get("error"), str) else None,
        "last": last if isinstance(last, dict) else None,
    }


def write_state(state, path=STATE):
    folder = path.rsplit("/", 1)[0] if "/" in path else ""
    if folder:
        try:
            os.mkdir(folder)
        except OSError:
            pass  # exists
    temporary = path + ".tmp"
    with open(temporary, "w") as f:
        f.write(json.dumps(state))
    os.rename(temporary, path)


def choose(state):
    """(the folder to run from, True when that is a first run on trial); updates `state`.

    A trial that already had its boot and did not confirm is rolled back here.
    """
    trial = state["trial"]
    if trial is not None:
        if not state["tried"]:
            state["tried"] = True
            return trial, True
        state["last"] = {
            "id": state["id"],
            "state": "rolled_back",
            "version": state["version"],
            "error": state["error"] or "not_confirmed",
        }
        state["trial"] = None
        state["tried"] = False
        state["error"] = None
    return state["active"], False


def offer(state, slot, transfer_id, version, confirm_s):
    """Record a verified copy in `slot` as on trial for the next boot."""
    state["trial"] = slot
    state["tried"] = False
    state["id"] = transfer_id
    state["version"] = version
    state["confirm_s"] = confirm_s
    state["error"] = None


def confirm(state, version):
    """The running trial proved itself: it becomes the active copy. False when none runs."""
    if state["trial"] is None or not state["tried"]:
        return False
    state["active"] = state["trial"]
    state["last"] = {"id": state["id"], "state": "installed", "version": version}
    state["trial"] = None
    state["tried"] = False
    state["error"] = None
    return True


def fail(error, path=STATE):
    """The running trial failed (`crashed`, `not_confirmed`): recorded for the next boot, which
    rolls back. False when no trial is running (nothing to roll back)."""
    state = read_state(path)
    if state["trial"] is None or not state["tried"]:
        return False
    state["error"] = error
    write_state(state, path)
    return True


def select(path=STATE):
    """Choose, store the choice, and put the chosen copy first on the import path.

    Returns (folder, confirm_s when on trial else None).
    """
    state = read_state(path)
    before = json.dumps(state)
    folder, trial = choose(state)
    if json.dumps(state) != before:
        write_state(state, path)
    if folder:
        sys.path.insert(0, folder)
    if folder or trial:
        print("semboot: running %s%s" % (folder, " on trial" if trial else ""))
    return folder, state["confirm_s"] if trial else None


def main():
    """On the ESP32: choose, run, and reset into the previous copy when a trial fails."""
    import machine

    folder, confirm_s = select()
    if confirm_s is not None:

        def expire(_timer):
            if fail("not_confirmed"):
                machine.reset()

        machine.Timer(0).init(mode=machine.Timer.ONE_SHOT, period=confirm_s * 1000, callback=expire)
    try:
        from semfw import app

        app.main()
    except Exception as err:
        if confirm_s is None:
            raise
        print("semboot: the new firmware failed: %r" % (err,))
        fail("crashed")
        machine.reset()
