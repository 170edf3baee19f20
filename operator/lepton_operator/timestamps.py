"""The one timestamp format of status and Events: RFC 3339 in UTC, whole seconds.

Kubernetes writes its own times this way (``metav1.Time``), so status fields read
alike in ``kubectl get -o yaml`` and compare as strings in the same order as in time.
"""

from __future__ import annotations

import datetime
import re
from typing import Any

RFC3339 = "%Y-%m-%dT%H:%M:%SZ"
# A Prometheus duration, units largest first ("1m30s"), as a range selector takes it.
DURATION_PATTERN = r"^([0-9]+y)?([0-9]+w)?([0-9]+d)?([0-9]+h)?([0-9]+m)?([0-9]+s)?([0-9]+ms)?$"
_DURATION = re.compile(DURATION_PATTERN)


def is_positive_duration(value: str) -> bool:
    """Whether ``value`` is a Prometheus duration above zero (``DURATION_PATTERN``)."""
    return bool(_DURATION.match(value)) and any(c in "123456789" for c in value)


_UNIT_SECONDS = {"y": 365 * 86400, "w": 7 * 86400, "d": 86400, "h": 3600, "m": 60, "s": 1}


def duration_seconds(value: str) -> float:
    """Seconds of a Prometheus duration (``DURATION_PATTERN``), e.g. 90 for ``1m30s``."""
    total = 0.0
    for number, unit in re.findall(r"([0-9]+)(ms|[ywdhms])", value):
        total += int(number) / 1000 if unit == "ms" else int(number) * _UNIT_SECONDS[unit]
    return total


def format_time(moment: datetime.datetime | float) -> str:
    """``moment``: an aware datetime, or Unix seconds."""
    if not isinstance(moment, datetime.datetime):
        moment = datetime.datetime.fromtimestamp(moment, datetime.UTC)
    return moment.astimezone(datetime.UTC).strftime(RFC3339)


def parse_time(value: Any) -> datetime.datetime:
    """An aware datetime from a status string; the dynamic client already hands back
    datetimes for the fields its schema types as such, and those pass through."""
    if isinstance(value, datetime.datetime):
        return value
    return datetime.datetime.strptime(str(value), RFC3339).replace(tzinfo=datetime.UTC)


def utc_now() -> str:
    return format_time(datetime.datetime.now(datetime.UTC))
