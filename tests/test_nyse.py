import datetime as dt

import numpy as np
import pandas as pd
import pytest

from technic_ml.nyse import (
    NY,
    calendar,
    is_market_hours,
    is_trading_day,
    last_completed_session,
    session_clock,
    session_lag,
    sessions_between,
    to_ny,
    trading_day_check,
)


@pytest.mark.parametrize(
    ("ts", "expected"),
    [
        ("2019-07-04 12:00", False),  # Independence Day
        ("2019-11-29 13:30", False),  # day after Thanksgiving: early close at 13:00
        ("2019-11-29 12:59", True),
        ("2019-07-03 13:30", False),  # early close before Independence Day
        ("2019-07-05 09:29", False),
        ("2019-07-05 09:30", True),
        ("2019-07-05 15:59", True),
        ("2019-07-05 16:00", False),
        ("2019-07-06 12:00", False),  # Saturday
        ("2001-09-11 12:00", False),  # unscheduled closure
        ("2012-10-29 12:00", False),  # Hurricane Sandy
        ("2019-12-25 12:00", False),
    ],
)
def test_market_hours_follow_the_real_calendar(ts, expected):
    assert is_market_hours(ts) is expected


def test_market_hours_respects_timezones():
    # 14:00 UTC in July is 10:00 in New York
    assert is_market_hours(dt.datetime(2019, 7, 5, 14, 0, tzinfo=dt.UTC))
    assert not is_market_hours(dt.datetime(2019, 7, 5, 13, 0, tzinfo=dt.UTC))


@pytest.mark.parametrize(
    ("ts", "expected"),
    [
        ("2019-11-29 12:00", dt.date(2019, 11, 27)),  # before the early close: previous session
        ("2019-11-29 13:00", dt.date(2019, 11, 29)),  # at the early close
        ("2019-07-05 09:00", dt.date(2019, 7, 3)),  # holiday in between
        ("2019-07-08 16:00", dt.date(2019, 7, 8)),
        ("2019-07-07 10:00", dt.date(2019, 7, 5)),  # Sunday
        (dt.date(2019, 7, 4), dt.date(2019, 7, 3)),  # a bare date means end of that day
        (dt.date(2019, 7, 5), dt.date(2019, 7, 5)),
    ],
)
def test_last_completed_session(ts, expected):
    assert last_completed_session(ts) == expected


def test_naive_means_new_york_and_dates_mean_end_of_day():
    assert to_ny("2019-01-02 10:00") == dt.datetime(2019, 1, 2, 10, 0, tzinfo=NY)
    assert to_ny(dt.date(2019, 1, 2)).hour == 23
    with pytest.raises(TypeError, match="as_of: received 5"):
        to_ny(5)


def test_session_lag_counts_sessions_not_days():
    assert session_lag(dt.date(2019, 7, 3), dt.date(2019, 7, 8)) == 2  # 5th and 8th
    assert session_lag(dt.date(2019, 7, 8), dt.date(2019, 7, 8)) == 0
    assert session_lag(dt.date(2019, 7, 9), dt.date(2019, 7, 8)) == 0


def test_date_string_means_end_of_day_like_a_date():
    assert to_ny("2019-12-31") == to_ny(dt.date(2019, 12, 31))
    assert last_completed_session("2019-12-31") == dt.date(2019, 12, 31)


@pytest.mark.parametrize(
    ("when", "expected"),
    [
        ("2026-12-23", None),  # a normal Wednesday
        ("2026-12-26", "2026-12-26 is not an NYSE trading day (weekend)"),  # Saturday
        (dt.date(2026, 12, 25), "2026-12-25 is not an NYSE trading day (Christmas)"),
        ("2026-11-26 10:00", "2026-11-26 is not an NYSE trading day (Thanksgiving)"),
        ("2026-11-27", None),  # day after Thanksgiving: an early close, still a session
        # National day of mourning for President Carter: an ad hoc closure the calendar lists unnamed.
        ("2025-01-09", "2025-01-09 is not an NYSE trading day (unscheduled closure)"),
    ],
)
def test_trading_day_check_names_the_reason(when, expected):
    assert trading_day_check(when) == expected
    assert is_trading_day(when) is (expected is None)


@pytest.mark.parametrize(
    "when",
    [
        "2026-12-24T23:30:00-05:00",
        "2026-12-25T04:30:00Z",  # the same instant in UTC: still Christmas Eve in New York
        dt.datetime(2026, 12, 25, 4, 30, tzinfo=dt.UTC),
    ],
)
def test_trading_day_is_judged_on_the_new_york_date(when):
    assert to_ny(when).date() == dt.date(2026, 12, 24)
    assert trading_day_check(when) is None  # Christmas Eve: early close, but a session


def test_trading_day_check_outside_the_calendar_names_the_span():
    with pytest.raises(ValueError, match=r"when: received '1980-01-02' .* expected a date between 1990"):
        trading_day_check("1980-01-02")


@pytest.mark.parametrize(
    ("when", "session"),
    [
        ("2018-12-20T08:30:00-05:00", "2018-12-20"),  # before the open: today
        ("2018-12-20T15:59:00-05:00", "2018-12-20"),
        ("2018-12-20T16:00:00-05:00", "2018-12-21"),  # at the close: the next session
        ("2018-12-24T13:30:00-05:00", "2018-12-26"),  # after an early close, over Christmas
        ("2018-12-25T08:30:00-05:00", "2018-12-26"),  # a holiday
        ("2018-12-22T08:30:00-05:00", "2018-12-24"),  # a Saturday
    ],
)
def test_current_or_next_session(when, session):
    from technic_ml.nyse import current_or_next_session

    assert current_or_next_session(when).isoformat() == session


# -- the session clock: the calendar as arrays, checked against the functions above -------------------


def _boundary_moments() -> list[dt.datetime]:
    """Instants where an answer flips: each side of opens and closes (early closes included),
    holidays, weekends, both DST changes, and the ends of the calendar."""
    cal = calendar()
    days = [
        "2001-09-11", "2012-10-29", "2018-11-23", "2018-12-24", "2019-03-08", "2019-03-11",
        "2019-07-03", "2019-07-04", "2019-07-05", "2019-11-01", "2019-11-04", "2019-11-29",
        "2019-12-24", "2020-03-09",
    ]  # fmt: skip
    sessions = [pd.Timestamp(d) for d in days if cal.is_session(d)]
    sessions += [cal.first_session, cal.last_session]
    moments = []
    for session in sessions:
        for edge in (cal.session_open(session), cal.session_close(session)):
            for shift in (-dt.timedelta(microseconds=1), dt.timedelta(0), dt.timedelta(microseconds=1)):
                moments.append((edge.to_pydatetime() + shift).astimezone(NY))
    for day in [*days, "2019-03-10", "2019-11-03", "2019-07-06"]:
        for hour in (0, 1, 2, 3, 9, 12, 16, 23):
            moments.append(to_ny(dt.datetime.fromisoformat(f"{day} {hour:02d}:30")))
    # 01:30 on 2019-11-03 happens twice in New York: EDT (fold 0) then EST (fold 1).
    moments.append(dt.datetime(2019, 11, 3, 1, 30, fold=1, tzinfo=NY))
    moments.append(to_ny(cal.last_session.date() + dt.timedelta(days=400)))
    return moments


def _random_moments(n: int) -> list[dt.datetime]:
    rng = np.random.default_rng(5)
    cal = calendar()
    lo, hi = cal.first_session.value // 1000, (cal.last_session.value // 1000) + 5 * 86_400_000_000
    stamps = rng.integers(lo, hi, n)
    return [
        (dt.datetime(1970, 1, 1, tzinfo=dt.UTC) + dt.timedelta(microseconds=int(s))).astimezone(NY)
        for s in stamps
    ]


def test_session_clock_answers_like_the_nyse_module():
    clock = session_clock()
    moments = _boundary_moments() + _random_moments(3000)
    for when in moments:
        try:
            expected = last_completed_session(when)
        except Exception as exc:  # before the first close: the clock must defer to nyse's error
            with pytest.raises(type(exc)):
                clock.last_completed(when)
        else:
            assert clock.last_completed(when).item() == expected, when
        assert clock.is_open(when) is is_market_hours(when), when
    assert sum(clock.is_open(w) for w in moments) > 300  # not vacuous: many open moments


def test_session_clock_counts_and_lags_like_the_nyse_module():
    clock = session_clock()
    rng = np.random.default_rng(8)
    first, last = calendar().first_session.date(), calendar().last_session.date()
    days = [first + dt.timedelta(days=int(d)) for d in rng.integers(-30, (last - first).days + 30, 600)]
    pairs = list(zip(days[::2], days[1::2], strict=True))
    near = [
        (d, d + dt.timedelta(days=int(g))) for d, g in zip(days[:200], rng.integers(0, 12, 200), strict=True)
    ]
    for a, b in pairs + near + [(dt.date(2019, 7, 3), dt.date(2019, 7, 8)), (last, last), (first, first)]:
        a64, b64 = np.datetime64(a, "D"), np.datetime64(b, "D")
        assert clock.count(a64, b64) == len(sessions_between(a, b)), (a, b)
        if first <= a <= last and first <= b <= last:
            assert clock.lag(a64, b64) == session_lag(a, b), (a, b)
