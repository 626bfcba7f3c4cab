"""New York time and the NYSE trading calendar.

Every timestamp in technic-ml is timezone-aware. Naive timestamps (the original scanner wrote
naive local times) are interpreted as America/New_York wall-clock time; during the autumn
daylight-saving change the ambiguous hour resolves to its first occurrence (EDT, ``fold=0``).

Session facts (holidays, early closes such as the day after Thanksgiving, unscheduled closures
such as 2001-09-11 or 2012-10-29) come from ``exchange_calendars``' XNYS calendar, never from a
hard-coded 9:30-16:00 rule. Point-in-time logic everywhere asks this module which daily bar was
complete at a moment: a bar for session *d* exists only once *d*'s close has passed.
Scheduled flows ask :func:`trading_day_check` whether a day is a session, and get a reason
(weekend, the holiday's name, an unscheduled closure) to log when it is not.
"""

from __future__ import annotations

import datetime as dt
import warnings
from functools import lru_cache
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd

NY = ZoneInfo("America/New_York")

# The calendar is built once for a span that covers the real data (1999-) and a few years ahead.
_CAL_START = "1990-01-02"


@lru_cache(maxsize=1)
def calendar():
    """The XNYS calendar (built once per process; about 0.3 s)."""
    import exchange_calendars as xc

    end = (pd.Timestamp.now(tz=NY).normalize() + pd.DateOffset(years=2)).strftime("%Y-%m-%d")
    with warnings.catch_warnings():
        # exchange_calendars trips a pandas deprecation while building; it is not ours to fix.
        warnings.simplefilter("ignore", category=FutureWarning)
        warnings.simplefilter("ignore", category=DeprecationWarning)
        return xc.get_calendar("XNYS", start=_CAL_START, end=end)


def to_ny(value: dt.datetime | dt.date | str | pd.Timestamp) -> dt.datetime:
    """Return ``value`` as an aware datetime in New York time.

    A naive datetime (or ISO string without offset) is New York wall-clock time. A bare date (a
    ``date`` or a ``YYYY-MM-DD`` string) means the end of that day in New York, i.e. after that
    day's close, so "as of 2019-11-29" includes that day's bar.
    """
    if isinstance(value, str):
        text = value.strip()
        # "2019-12-31" is a date, and a date means the end of that day, like dt.date.
        value = dt.date.fromisoformat(text) if len(text) == 10 else pd.Timestamp(text)
    if isinstance(value, pd.Timestamp):
        value = value.to_pydatetime()
    if isinstance(value, dt.datetime):
        if value.tzinfo is None:
            return value.replace(tzinfo=NY)
        return value.astimezone(NY)
    if isinstance(value, dt.date):
        return dt.datetime.combine(value, dt.time(23, 59, 59, 999999), tzinfo=NY)
    raise TypeError(
        f"as_of: received {value!r} ({type(value).__name__}); expected a datetime, date or ISO string"
    )


def now_ny() -> dt.datetime:
    return dt.datetime.now(tz=NY)


def _utc(ts: dt.datetime) -> pd.Timestamp:
    return pd.Timestamp(to_ny(ts)).tz_convert("UTC")


def is_market_hours(ts: dt.datetime | str | pd.Timestamp) -> bool:
    """True when NYSE's regular session is open at ``ts`` (open inclusive, close exclusive)."""
    cal = calendar()
    t = _utc(ts)
    day = pd.Timestamp(to_ny(ts).date())
    if day < cal.first_session or day > cal.last_session or not cal.is_session(day):
        return False
    open_, close = cal.session_open(day), cal.session_close(day)
    return bool(open_ <= t < close)


def last_completed_session(ts: dt.datetime | dt.date | str | pd.Timestamp) -> dt.date:
    """The latest NYSE session whose close is at or before ``ts``.

    A scan at noon on a trading day sees the previous session's close; a scan after 16:00 (or after
    13:00 on an early-close day) sees the same day's.
    """
    cal = calendar()
    t = _utc(ts)
    day = pd.Timestamp(to_ny(ts).date())
    if day > cal.last_session:
        day = cal.last_session
    if day < cal.first_session:
        raise ValueError(f"as_of: received {ts}; expected a time after {cal.first_session.date()}")
    session = cal.date_to_session(day, direction="previous")
    if cal.session_close(session) > t:
        session = cal.previous_session(session)
    return session.date()


def current_or_next_session(ts: dt.datetime | dt.date | str | pd.Timestamp) -> dt.date:
    """The NYSE session still to close at ``ts``: today's before its close, else the next one.

    Presets generated at 08:30 on a trading day are for that day; on a holiday or after the close,
    for the next session.
    """
    cal = calendar()
    t = _utc(ts)
    day = pd.Timestamp(to_ny(ts).date())
    if day < cal.first_session or day >= cal.last_session:
        raise ValueError(
            f"as_of: received {ts}; expected a time between {cal.first_session.date()}"
            f" and {cal.last_session.date()}"
        )
    session = cal.date_to_session(day, direction="next")
    if cal.session_close(session) <= t:
        session = cal.next_session(session)
    return session.date()


def sessions_between(start: dt.date, end: dt.date) -> pd.DatetimeIndex:
    """NYSE sessions in [start, end] (naive dates)."""
    cal = calendar()
    start_ts = max(pd.Timestamp(start), cal.first_session)
    end_ts = min(pd.Timestamp(end), cal.last_session)
    if start_ts > end_ts:
        return pd.DatetimeIndex([])
    return cal.sessions_in_range(start_ts, end_ts)


def session_lag(bar_date: dt.date, expected: dt.date) -> int:
    """How many NYSE sessions ``bar_date`` is behind ``expected`` (0 when current or ahead)."""
    if bar_date >= expected:
        return 0
    return len(sessions_between(bar_date, expected)) - 1


@lru_cache(maxsize=8)
def _holiday_names(year: int) -> dict[dt.date, str]:
    """Regular NYSE holidays of ``year`` by name (Christmas, Thanksgiving...).

    exchange_calendars evaluates its holiday rules on demand (about 60 ms per call), so one call per
    year is cached; ad hoc closures (2001-09-11, 2025-01-09) are a bare list of dates without names.
    """
    names = calendar().regular_holidays.holidays(
        pd.Timestamp(year, 1, 1), pd.Timestamp(year, 12, 31), return_name=True
    )
    return {ts.date(): str(name) for ts, name in names.items()}


def trading_day_check(when: dt.datetime | dt.date | str | pd.Timestamp) -> str | None:
    """None when the New York date of ``when`` is an NYSE session, else why it is not.

    ``when`` is read like :func:`to_ny` reads it, so an instant is judged on its New York date
    (2026-12-25T04:30Z is 2026-12-24 in New York). The reason names the holiday when the calendar
    knows it, e.g. ``"2026-12-25 is not an NYSE trading day (Christmas)"``; otherwise it says
    ``(weekend)`` or ``(unscheduled closure)``. Early-close days are sessions.
    """
    day = to_ny(when).date()
    cal = calendar()
    stamp = pd.Timestamp(day)
    if not cal.first_session <= stamp <= cal.last_session:
        raise ValueError(
            f"when: received {when!r} (New York date {day}); expected a date between"
            f" {cal.first_session.date()} and {cal.last_session.date()} (the calendar's span)"
        )
    if cal.is_session(stamp):
        return None
    if day.weekday() >= 5:
        # A holiday that falls on a weekend is observed on a weekday; the weekend day is just a weekend.
        why = "weekend"
    elif (name := _holiday_names(day.year).get(day)) is not None:
        why = name
    elif stamp in cal.adhoc_holidays:
        why = "unscheduled closure"
    else:
        why = "market holiday"
    return f"{day.isoformat()} is not an NYSE trading day ({why})"


def is_trading_day(when: dt.datetime | dt.date | str | pd.Timestamp) -> bool:
    """True when the New York date of ``when`` is an NYSE session (see :func:`trading_day_check`)."""
    return trading_day_check(when) is None


_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
_MICROSECOND = dt.timedelta(microseconds=1)


def _micros(when: dt.datetime) -> int:
    """UTC microseconds since the epoch of an aware datetime (exact: datetimes hold microseconds)."""
    return (when - _EPOCH) // _MICROSECOND


class SessionClock:
    """The XNYS calendar of :func:`calendar` as sorted arrays, for lookups in a loop.

    Each ``technic_ml.nyse`` call goes through exchange_calendars and pandas (0.1-0.3 ms); a scan
    needs several. The answers are the same by construction: every NYSE session opens and closes
    on its own New York date, so "the latest session whose close is at or before t" and "the
    session whose open <= t < close" are binary searches over the open and close instants (the
    tests compare both with ``technic_ml.nyse`` on holidays, early closes, DST changes and the ends
    of the calendar). Moments before the calendar's first close are left to
    ``technic_ml.nyse``, so its errors stay the errors.
    """

    def __init__(self) -> None:
        cal = calendar()
        self.days = cal.sessions.to_numpy().astype("datetime64[D]")
        self._opens = pd.DatetimeIndex(cal.opens).as_unit("us").asi8
        self._closes = pd.DatetimeIndex(cal.closes).as_unit("us").asi8

    def last_completed(self, as_of: dt.datetime | dt.date | str | pd.Timestamp) -> np.datetime64:
        """:func:`technic_ml.nyse.last_completed_session` as a ``datetime64[D]``."""
        when = to_ny(as_of)
        i = int(np.searchsorted(self._closes, _micros(when), side="right")) - 1
        if i < 0:
            return np.datetime64(last_completed_session(when), "D")
        return self.days[i]

    def is_open(self, as_of: dt.datetime | dt.date | str | pd.Timestamp) -> bool:
        """:func:`technic_ml.nyse.is_market_hours`: the regular session is open (open inclusive)."""
        t = _micros(to_ny(as_of))
        i = int(np.searchsorted(self._opens, t, side="right")) - 1
        return i >= 0 and t < int(self._closes[i])

    def count(self, start: np.datetime64, end: np.datetime64) -> int:
        """``len(technic_ml.nyse.sessions_between(start, end))`` for ``datetime64[D]`` days."""
        n = int(np.searchsorted(self.days, end, side="right")) - int(
            np.searchsorted(self.days, start, side="left")
        )
        return max(0, n)

    def lag(self, bar: np.datetime64, expected: np.datetime64) -> int:
        """:func:`technic_ml.nyse.session_lag`: sessions ``bar`` is behind ``expected`` (0 if not)."""
        return 0 if bar >= expected else self.count(bar, expected) - 1


@lru_cache(maxsize=1)
def session_clock() -> SessionClock:
    """The process's :class:`SessionClock` (built once, from the already cached calendar)."""
    return SessionClock()
