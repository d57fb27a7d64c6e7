"""The node health judgement: one state from several signals, never from eth_syncing alone."""

from __future__ import annotations

import pytest

from collectors.health import HEALTH_CODES, HealthLimits, NodeSignals, health_from_code, judge_health

NOW = 1_750_000_000.0
LIMITS = HealthLimits(max_head_age=300.0, max_lag=20, min_peers=1)

# A node that looks fine on every signal; each case changes one or a few fields.
FINE = dict(
    ever_had_height=True,
    progress_at=NOW - 10,
    head_time=NOW - 12,
    syncing=False,
    height=100,
    peers=8,
    lag=0,
)


def signals(**changes: object) -> NodeSignals:
    """Return the fine node's signals with `changes` applied."""
    return NodeSignals(**{**FINE, **changes})  # type: ignore[arg-type]


CASES = [
    ("all fine", signals(), "ok"),
    ("unreachable", NodeSignals(failure="unreachable", message="ConnectError"), "down"),
    ("overloaded", NodeSignals(failure="overloaded", message="HTTP 503"), "down"),
    ("server error", NodeSignals(failure="server_error", message="HTTP 502"), "down"),
    ("credentials rejected", NodeSignals(failure="auth", message="HTTP 401"), "misconfigured"),
    ("password env unset", NodeSignals(failure="credentials", message="unset"), "misconfigured"),
    ("html page", NodeSignals(failure="not_jsonrpc", message="HTML"), "misconfigured"),
    ("other chain", NodeSignals(failure="wrong_chain", message="chain 5"), "misconfigured"),
    ("warming up", signals(warming_up=True, message="Loading block index…", ever_had_height=False), "starting"),
    ("sync object all zero", signals(syncing=True, sync_not_started=True, peers=0), "starting"),
    ("no height yet", signals(ever_had_height=False, progress_at=NOW - 5, height=None), "starting"),
    ("no height for too long", signals(ever_had_height=False, progress_at=NOW - 400, height=None), "stalled"),
    # BR-19 (1): eth_syncing false, zero peers, frozen height, far behind the reference.
    (
        "not syncing but frozen",
        signals(peers=0, progress_at=NOW - 600, head_time=NOW - 700, height=16, lag=1_234_551),
        "stalled",
    ),
    ("zero peers only", signals(peers=0), "stalled"),
    ("peers above minimum", signals(peers=2), "ok"),
    ("height frozen only", signals(progress_at=NOW - 301), "stalled"),
    ("height frozen at limit", signals(progress_at=NOW - 300), "ok"),
    ("old head, not syncing", signals(head_time=NOW - 301), "stalled"),
    ("old head while syncing", signals(syncing=True, head_time=NOW - 86_400, sync_target=500), "syncing"),
    ("syncing but frozen", signals(syncing=True, progress_at=NOW - 900, sync_target=500), "stalled"),
    ("syncing", signals(syncing=True, sync_target=5000, lag=4900), "syncing"),
    ("lag over limit", signals(lag=21), "lagging"),
    ("lag at limit", signals(lag=20), "ok"),
    ("lag unknown", signals(lag=None), "ok"),
    ("peers unknown (module disabled)", signals(peers=None), "ok"),
    ("head time unknown", signals(head_time=None), "ok"),
    ("invalid height this poll", signals(height=None), "ok"),
]


@pytest.mark.parametrize(("case", "given", "expected"), CASES, ids=[case[0] for case in CASES])
def test_health_table(case: str, given: NodeSignals, expected: str) -> None:
    """Each combination of signals gives the state of the module's table."""
    assert judge_health(given, LIMITS, NOW).state == expected


def test_zero_peers_allowed_for_dev_node() -> None:
    """A node configured with min_peers 0 (a development node) is ok without peers."""
    limits = HealthLimits(max_head_age=300.0, max_lag=20, min_peers=0)

    assert judge_health(signals(peers=0), limits, NOW).state == "ok"


def test_starting_keeps_warmup_message() -> None:
    """A warming-up node shows the node's own message as the reason."""
    judgement = judge_health(signals(warming_up=True, message="Verifying blocks…"), LIMITS, NOW)

    assert judgement.reason == "Verifying blocks…"


def test_stalled_reason_names_peers() -> None:
    """A peerless node names its peer count in the reason."""
    judgement = judge_health(signals(peers=0), LIMITS, NOW)

    assert judgement.reason == "0 peers, minimum 1"


def test_lagging_reason_names_blocks() -> None:
    """A lagging node names how far behind it is."""
    judgement = judge_health(signals(lag=42), LIMITS, NOW)

    assert judgement.reason == "42 blocks behind, limit 20"


@pytest.mark.parametrize("state", list(HEALTH_CODES))
def test_code_round_trip(state: str) -> None:
    """Every state's code maps back to the state."""
    assert health_from_code(float(HEALTH_CODES[state])) == state  # type: ignore[index]


@pytest.mark.parametrize("code", [-1.0, 7.0, 2.5])
def test_unknown_code(code: float) -> None:
    """A value that is no state's code gives None."""
    assert health_from_code(code) is None


def test_codes_unique() -> None:
    """No two states share a code, and ok is 0."""
    assert sorted(HEALTH_CODES.values()) == list(range(len(HEALTH_CODES)))
    assert HEALTH_CODES["ok"] == 0
