import datetime as dt

import pytest

from technic_ml.nyse import (
    NY,
    is_market_hours,
    is_trading_day,
    last_completed_session,
    session_lag,
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
