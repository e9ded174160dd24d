"""The few Home Assistant REST calls the demo makes: onboarding, login, config flow, states."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Mapping
from typing import Any

from demo.flow import UnansweredField, answer_form
from demo.processes import DemoError

OWNER_NAME = "Demo Owner"
OWNER_USERNAME = "demo"
# A throwaway account of a demo that only listens on 127.0.0.1.
OWNER_PASSWORD = "smart-energy-demo"


class HassError(DemoError):
    """A request to Home Assistant failed; `status` is the HTTP status when it answered."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class HassClient:
    """A minimal client for one Home Assistant on 127.0.0.1."""

    def __init__(self, port: int) -> None:
        self.base = f"http://127.0.0.1:{port}"
        self.client_id = f"{self.base}/"
        self.token: str | None = None
        self.last_error = ""

    def request(
        self,
        method: str,
        path: str,
        body: Mapping[str, Any] | None = None,
        *,
        form: Mapping[str, str] | None = None,
        timeout: float = 30.0,
    ) -> Any:
        headers = {}
        data = None
        if form is not None:
            data = urllib.parse.urlencode(form).encode()
            headers["Content-Type"] = "application/x-www-form-urlencoded"
        elif body is not None:
            data = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        req = urllib.request.Request(self.base + path, data, headers, method=method)
        try:
            with urllib.request.urlopen(req, timeout=timeout) as resp:
                raw = resp.read()
        except urllib.error.HTTPError as err:
            detail = err.read().decode(errors="replace")[:500]
            raise HassError(f"{method} {path}: HTTP {err.code} {detail}", err.code) from err
        except (urllib.error.URLError, OSError) as err:
            raise HassError(f"{method} {path}: {err}") from err
        return json.loads(raw) if raw else None

    def http_up(self) -> bool:
        """True once the HTTP server answers at all (before onboarding it answers 400 here)."""
        try:
            self.request("GET", "/auth/providers", timeout=3)
        except HassError as err:
            self.last_error = str(err)
            return err.status is not None
        return True

    def onboarding_status(self) -> dict[str, bool]:
        """{step: done}; Home Assistant drops the endpoint once onboarding is complete."""
        try:
            steps = self.request("GET", "/api/onboarding")
        except HassError as err:
            if err.status == 404:
                return {}
            raise
        return {step["step"]: step["done"] for step in steps}

    def create_owner(self) -> None:
        """Onboarding's user step: creates the owner, then logs in with the returned code."""
        result = self.request(
            "POST",
            "/api/onboarding/users",
            {
                "client_id": self.client_id,
                "name": OWNER_NAME,
                "username": OWNER_USERNAME,
                "password": OWNER_PASSWORD,
                "language": "en",
            },
        )
        self._exchange_code(result["auth_code"])

    def login_trusted_network(self) -> str:
        """Log in the way the browser does from 127.0.0.1; returns the provider that did it."""
        providers = self.request("GET", "/auth/providers")
        if isinstance(providers, Mapping):  # newer servers wrap the list
            providers = providers["providers"]
        first = providers[0]
        flow = self.request(
            "POST",
            "/auth/login_flow",
            {
                "client_id": self.client_id,
                "handler": [first["type"], first["id"]],
                "redirect_uri": f"{self.base}/?auth_callback=1",
            },
        )
        if flow.get("type") != "create_entry":
            raise HassError(f"login from 127.0.0.1 is not automatic: {flow}")
        self._exchange_code(flow["result"])
        return str(first["type"])

    def _exchange_code(self, code: str) -> None:
        tokens = self.request(
            "POST",
            "/auth/token",
            form={"grant_type": "authorization_code", "code": code, "client_id": self.client_id},
        )
        self.token = tokens["access_token"]

    def core_state(self) -> str:
        return str(self.request("GET", "/api/config").get("state", ""))

    def wait_running(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        state = ""
        while time.monotonic() < deadline:
            state = self.core_state()
            if state == "RUNNING":
                return
            time.sleep(0.5)
        raise HassError(f"Home Assistant did not finish starting (state {state!r})")

    def state(self, entity_id: str) -> dict[str, Any] | None:
        try:
            result: dict[str, Any] = self.request("GET", f"/api/states/{entity_id}")
        except HassError as err:
            if err.status == 404:
                return None
            raise
        return result

    def call_service(self, domain: str, service: str, data: Mapping[str, Any]) -> Any:
        return self.request("POST", f"/api/services/{domain}/{service}", data)

    def config_entries(self, domain: str) -> list[dict[str, Any]]:
        entries: list[dict[str, Any]] = self.request(
            "GET", f"/api/config/config_entries/entry?domain={domain}"
        )
        return entries

    def remove_config_entry(self, entry_id: str) -> None:
        self.request("DELETE", f"/api/config/config_entries/entry/{entry_id}")

    def run_config_flow(
        self, handler: str, answers: Mapping[str, Any], timeout: float = 60.0
    ) -> dict[str, Any]:
        """Walk a config flow to its end; returns the create_entry result."""
        deadline = time.monotonic() + timeout
        base = "/api/config/config_entries/flow"
        result = self.request("POST", base, {"handler": handler, "show_advanced_options": True})
        seen_errors: dict[str, Any] = {}
        while time.monotonic() < deadline:
            kind = result.get("type")
            flow_id = result.get("flow_id")
            if kind == "create_entry":
                return dict(result)
            if kind == "abort":
                raise HassError(f"config flow aborted: {result.get('reason')}")
            if kind == "form":
                if result.get("errors"):
                    if result["errors"] == seen_errors:
                        raise HassError(
                            f"config flow step {result.get('step_id')!r}: {result['errors']}"
                        )
                    seen_errors = result["errors"]
                try:
                    data = answer_form(result.get("data_schema") or [], answers)
                except UnansweredField as err:
                    raise HassError(
                        f"config flow step {result.get('step_id')!r} asks for {err}, "
                        "which the demo cannot answer"
                    ) from err
                result = self.request("POST", f"{base}/{flow_id}", data)
            elif kind in ("progress", "show_progress"):
                time.sleep(0.5)
                result = self.request("GET", f"{base}/{flow_id}")
            elif kind == "progress_done":
                result = self.request("POST", f"{base}/{flow_id}", {})
            else:
                raise HassError(f"config flow step of unexpected type {kind!r}: {result}")
        raise HassError(f"config flow {handler} did not finish within {timeout:.0f} s")
