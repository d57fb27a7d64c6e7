"""Schemathesis against a real `atlas daemon`: every operation of its live OpenAPI schema.

One daemon runs for the module on 127.0.0.1 with its own data directory and an
analytics app. It has three alert rules: one fires at the first evaluation, one stays
pending for an hour and one never matches, so the routes have data to return. The
schema is loaded from the daemon's `/openapi.json`. Schemathesis generates requests
for every operation in it, with valid and invalid parameters and bodies, at most
`MAX_EXAMPLES` per operation in the fuzzing phase, plus the coverage phase's
boundary cases. Hypothesis runs derandomized, so `make test` sends the same requests
on every run. Each response is checked for a 5xx, for a status, content type, header
or body the schema does not declare, for an invalid request the API accepts, for an
operation that succeeds without its token, and for a method the path does not take
that gets anything but 405. `schemathesis run` with a larger `--max-examples`
explores further by hand.

Requests carry the daemon's local token (read, ack and admin), except the ingest
route, which takes the analytics app's ingest key. `WS /ws` is not fuzzed: OpenAPI
3.1 has no WebSocket operations, so FastAPI leaves it out of the schema, and
`tests/api/test_ws.py` covers it.

`positive_data_acceptance` is not run, because some valid-looking requests are
invalid by rules a schema cannot express: `from` must be before `to`, a `step` may
give at most a fixed number of points, and one label key takes one value.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, settings

from atlas_tui.api.access import INGEST_PATH
from atlas_tui.api_tokens import read_local_token
from tests.api_tokens import bearer
from tests.e2e.processes import AtlasDaemon, poll

pytestmark = pytest.mark.e2e

MAX_EXAMPLES = 100
"""Requests per operation in schemathesis' fuzzing phase. With 100 the module took 13 s on a
2-core machine, 300 took 31 s and found nothing more."""

INGEST_KEY = "pk_atlas_wallet_fuzz"
"""Ingest key of the config's analytics app."""

DISABLED_CHECKS = ("positive_data_acceptance", "use_after_free", "ensure_resource_availability", "object_level_authorization")
"""Checks left out: the first for the reason in the module docstring, the others
because they need schemathesis' stateful phase or a second identity."""

DAEMON_CONFIG: dict[str, object] = {
    "alert_rules": [
        {"id": "many_processes", "name": "Many processes", "condition": "process_count > 1", "severity": "critical"},
        {"id": "memory_held", "name": "Memory held", "condition": "memory_usage >= 0", "for": "1h"},
        {"id": "cpu_impossible", "name": "CPU over 1000 %", "condition": "cpu_usage > 1000", "severity": "info"},
    ],
    "collectors": {"system": {"interval": "1s"}},
    "alerting": {"evaluation_interval": "1s"},
    "analytics": {
        "apps": {"atlas-wallet": {"ingest_key": INGEST_KEY}},
        "rate_limits": {"device_batches_per_minute": 100_000},
    },
    # The rate limits have their own tests, and here they would only turn fuzzing into 429s.
    "api": {"rate_limits": {"per_token_per_minute": 0, "per_address_per_minute": 0}},
}
"""Config of the fuzzed daemon."""


@dataclass(frozen=True)
class FuzzTarget:
    """The running daemon and how to reach it."""

    daemon: AtlasDaemon
    base_url: str
    token: str
    """The daemon's local token: read, ack and admin."""


@pytest.fixture(scope="module")
def fuzz_target(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FuzzTarget]:
    """A daemon with a firing alert, serving on a free port of 127.0.0.1."""
    root = tmp_path_factory.mktemp("openapi-fuzz")
    config_path = root / "config.json"
    config_path.write_text(json.dumps(DAEMON_CONFIG), encoding="utf-8")
    daemon = AtlasDaemon.start(root / "data", config_path, root / "daemon.log", api=True)
    try:
        assert daemon.wait_started(), f"daemon did not start:\n{daemon.log()}"
        target = FuzzTarget(daemon, f"http://127.0.0.1:{daemon.port()}", read_local_token(daemon.data_dir))
        assert poll(lambda: "firing" in _alert_states(target), timeout=15.0), f"no alert fired:\n{daemon.log()}"
        yield target
    finally:
        daemon.ensure_dead()


@pytest.fixture(scope="module")
def api_schema(fuzz_target: FuzzTarget) -> schemathesis.BaseSchema:
    """The daemon's OpenAPI schema, loaded from `/openapi.json`, with the credentials and checks of this module."""
    config = schemathesis.Config.from_dict(
        {
            "generation": {"max-examples": MAX_EXAMPLES, "deterministic": True, "database": "none"},
            "checks": {name: {"enabled": False} for name in DISABLED_CHECKS},
            "auth": {"openapi": {"bearerAuth": {"bearer": fuzz_target.token}}},
            "operations": [
                {
                    "include-path": INGEST_PATH,
                    "headers": {"Authorization": f"Bearer {INGEST_KEY}"},
                    "checks": {
                        # The guard requires an API token for every method but POST on this path,
                        # so a TRACE with the ingest key gets 401 before routing could return 405.
                        "unsupported_method": {"enabled": False},
                        # An invalid event in a valid envelope gets status `rejected` in a 200
                        # response, so the SDK's other events of that batch are still stored.
                        "negative_data_rejection": {"enabled": False},
                    },
                },
                {
                    "include-path-regex": "^/api/metrics(/range)?$",
                    # A string in place of the array of `name` or `label` values is sent as
                    # `?name=x`, the same query a one-element array gives, so schemathesis
                    # 4.32.5 reports that valid request as invalid data that was accepted.
                    "checks": {"negative_data_rejection": {"enabled": False}},
                },
            ],
        }
    )
    return schemathesis.openapi.from_url(f"{fuzz_target.base_url}/openapi.json", config=config, timeout=10)


schema = schemathesis.pytest.from_fixture("api_schema")


@schema.parametrize()
@settings(deadline=None, suppress_health_check=list(HealthCheck))
def test_openapi_fuzz(case: schemathesis.Case) -> None:
    """Every generated request gets a documented response that matches the schema, and no 5xx."""
    case.call_and_validate()


def test_alert_routes_known_ids(api_schema: schemathesis.BaseSchema, fuzz_target: FuzzTarget) -> None:
    """History and acknowledgement of every stored alert, firing and pending, match the schema."""
    alerts = httpx.get(f"{fuzz_target.base_url}/api/alerts?all=true", headers=bearer(fuzz_target.token)).json()
    history = api_schema["/api/alerts/{alert_id}/history"]["GET"]
    ack = api_schema["/api/alerts/ack/{alert_id}"]["POST"]
    # Cases built by hand get no credentials from the config.
    headers = bearer(fuzz_target.token)
    statuses = set()
    for alert in alerts:
        for alert_id in (alert["alert_id"], alert["fingerprint"]):
            history.Case(path_parameters={"alert_id": alert_id}).call_and_validate(headers=headers)
            acknowledge = ack.Case(path_parameters={"alert_id": alert_id}, body={"message": "fuzz"})
            statuses.add(acknowledge.call_and_validate(headers=headers).status_code)

    assert {alert["rule_id"] for alert in alerts} == {"many_processes", "memory_held"}
    assert statuses == {200, 409}


def test_ingest_device_id_object(fuzz_target: FuzzTarget) -> None:
    """An event whose device_id is an object is rejected in a 200 response, not a 500 (found by schemathesis)."""
    batch = {"schema": 1, "sent_at": "2026-01-01T00:00:00Z", "events": [{"device_id": {}}, {"device_id": []}]}

    response = httpx.post(f"{fuzz_target.base_url}{INGEST_PATH}", json=batch, headers=bearer(INGEST_KEY), timeout=5.0)

    assert response.status_code == 200
    assert [event["status"] for event in response.json()["events"]] == ["rejected", "rejected"]


def _alert_states(target: FuzzTarget) -> set[str]:
    response = httpx.get(f"{target.base_url}/api/alerts?all=true", headers=bearer(target.token), timeout=5.0)
    return {alert["state"] for alert in response.json()} if response.status_code == 200 else set()
