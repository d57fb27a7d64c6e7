"""The JSON form of an alert instance's engine record, stored in `alert_instances.state_json`.

`storage.alerts` writes every `InstanceState` through `encode_state` and reads it
back through `decode_state`. Invariants: the round trip is lossless (NaN and
infinite values included, which Python's `json` writes as `NaN` and `Infinity`),
and the format carries a version number, so a later format can still read rows
written by this one.
"""

from __future__ import annotations

import json
from typing import Any

from atlas_tui.alerts.state import Ack, AlertState, ChannelRecord, InstanceState
from storage.errors import StorageError

__all__ = ["STATE_FORMAT", "StateFormatError", "decode_state", "encode_state"]

STATE_FORMAT = 1
"""Version of the JSON layout written by `encode_state`."""

_TIMES = ("active_since", "fired_at", "last_true_at", "first_false_at", "resolved_at", "last_eval")


class StateFormatError(StorageError):
    """Raised when a stored alert record cannot be decoded (damaged row or newer format)."""


def encode_state(state: InstanceState) -> str:
    """Return the JSON text of `state`."""
    data: dict[str, Any] = {
        "format": STATE_FORMAT,
        "fingerprint": state.fingerprint,
        "rule_id": state.rule_id,
        "labels": [list(pair) for pair in state.labels],
        "state": str(state.state),
        "value": state.value,
        "message": state.message,
        "incident_seq": state.incident_seq,
        "ack": None if state.ack is None else [state.ack.by, state.ack.at, state.ack.message],
        "acks": state.acks,
        "channels": [_encode_channel(record) for record in state.channels],
    }
    for name in _TIMES:
        data[name] = getattr(state, name)
    return json.dumps(data, separators=(",", ":"), ensure_ascii=False)


def decode_state(text: str) -> InstanceState:
    """Parse the JSON text written by `encode_state`.

    Raises:
        StateFormatError: the text is not a record of a known format.
    """
    try:
        data = json.loads(text)
        if data.get("format") != STATE_FORMAT:
            raise StateFormatError(
                f"alert record format {data.get('format')!r} is not supported; "
                f"this atlas reads format {STATE_FORMAT}, so upgrade atlas"
            )
        return _decode(data)
    except (ValueError, KeyError, TypeError, AttributeError) as err:
        raise StateFormatError(f"damaged alert record: {err}") from err


def _decode(data: dict[str, Any]) -> InstanceState:
    ack = data["ack"]
    return InstanceState(
        fingerprint=data["fingerprint"],
        rule_id=data["rule_id"],
        labels=tuple((str(key), str(value)) for key, value in data["labels"]),
        state=AlertState(data["state"]),
        value=data["value"],
        message=data["message"],
        incident_seq=int(data["incident_seq"]),
        ack=None if ack is None else Ack(ack[0], ack[1], ack[2]),
        acks=int(data["acks"]),
        channels=tuple(_decode_channel(record) for record in data["channels"]),
        **{name: data[name] for name in _TIMES},
    )


def _encode_channel(record: ChannelRecord) -> list[Any]:
    return [
        record.channel,
        record.incident_seq,
        record.last_notice_at,
        record.last_firing_at,
        record.repeats,
    ]


def _decode_channel(fields: list[Any]) -> ChannelRecord:
    channel, incident_seq, last_notice_at, last_firing_at, repeats = fields
    return ChannelRecord(channel, int(incident_seq), last_notice_at, last_firing_at, int(repeats))
