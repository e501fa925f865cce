"""When a workstation can work (production.md §4.7 /downtime/, §4.8 /work-schedule/): the working time of its type's
work-schedule (`non_stop`, or a `calendar` week of daily windows in the workstation's local time, `utc_offset` hours
from UTC) minus its downtimes. Pure time arithmetic, no store: the scheduler (services.production.schedule) asks
where a stretch of work of a given length starts and ends.

The rule for a run that does not fit in one window: work stops outside the working time and during a downtime and
goes on at the next working instant (the way a work calendar counts hours), so a 20-hour print on a Monday–Friday
08:00–18:00 week takes two working days and the night between them.
"""
from dataclasses import dataclass, field
from datetime import datetime, time, timedelta, timezone

DAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
HORIZON = timedelta(days=5 * 366)  # no working time within five years: the schedule says "unknown" instead
LAST_YEAR = 9000  # work ready later than this is not placed (the horizon would pass datetime's last year)
BAD_WEEK = ("week must map days (monday … sunday) to {\"start\": \"HH:MM\", \"finish\": \"HH:MM\"} (local times of "
            "day; a finish before its start ends the next morning).")


def parse_time_of_day(value):
    """"08:00", "08:00:00" or "24:00" (the end of the day) → seconds since midnight; ValueError otherwise."""
    if not isinstance(value, str):
        raise ValueError(value)
    if value.strip() in ("24:00", "24:00:00"):
        return 86400
    parsed = time.fromisoformat(value.strip())
    if parsed.tzinfo is not None:
        raise ValueError(value)
    return parsed.hour * 3600 + parsed.minute * 60 + parsed.second


def check_week(week):
    """The week of a calendar work-schedule as {day: (start seconds, finish seconds)}; ValueError(BAD_WEEK)."""
    if not isinstance(week, dict) or set(week) - set(DAYS):
        raise ValueError(BAD_WEEK)
    days = {}
    for day, window in week.items():
        if window in (None, {}):
            continue  # a day off
        if not isinstance(window, dict) or set(window) != {"start", "finish"}:
            raise ValueError(BAD_WEEK)
        try:
            start, finish = parse_time_of_day(window["start"]), parse_time_of_day(window["finish"])
        except (TypeError, ValueError):
            raise ValueError(BAD_WEEK) from None
        if start == finish or start >= 86400:
            raise ValueError(BAD_WEEK)
        days[day] = (start, finish if finish > start else finish + 86400)  # overnight: ends the next morning
    return days


def parse_instant(value):
    """An ISO-8601 datetime as an aware UTC datetime (a naive one is taken as UTC); None if it is not one."""
    if isinstance(value, datetime):
        parsed = value
    else:
        try:
            parsed = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
        except (TypeError, ValueError):
            return None
    return parsed.replace(tzinfo=timezone.utc) if parsed.tzinfo is None else parsed.astimezone(timezone.utc)


@dataclass
class WorkingTime:
    """One workstation's working time: its type's week (None: non-stop) and its downtimes [(start, finish)]."""

    week: dict = None  # {day: (start seconds, finish seconds)} in local time, from check_week
    utc_offset: float = 0.0
    downtimes: list = field(default_factory=list)

    def __post_init__(self):
        self.downtimes = sorted((s, f) for s, f in self.downtimes if s is not None and f is not None and f > s)

    def _shifts(self, since):
        """The calendar's working windows [start, end) in UTC that end after `since`, in order (endless)."""
        if self.week is None:
            yield since, since + HORIZON
            return
        if not self.week:
            return  # a calendar without a working day: no working time at all
        offset = timedelta(hours=self.utc_offset)
        local_day = (since + offset).date() - timedelta(days=1)  # yesterday's overnight window may still run
        while True:
            window = self.week.get(DAYS[local_day.weekday()])
            if window is not None:
                midnight = datetime.combine(local_day, time(), tzinfo=timezone.utc) - offset
                start, end = midnight + timedelta(seconds=window[0]), midnight + timedelta(seconds=window[1])
                if end > since:
                    yield max(start, since), end
            local_day += timedelta(days=1)

    def free(self, since):
        """The working time from `since` on, downtimes taken out: [start, end) stretches in order, within the
        horizon."""
        limit = since + HORIZON
        for start, end in self._merged_shifts(since, limit):
            for piece in self._minus_downtimes(start, end):
                yield piece

    def _merged_shifts(self, since, limit):
        """Shifts joined where one ends as the next begins (a 24:00 finish and a 00:00 start are one stretch)."""
        current = None
        for start, end in self._shifts(since):
            if start >= limit:
                break
            if current is not None and start <= current[1]:
                current = (current[0], max(current[1], end))
                continue
            if current is not None:
                yield current
            current = (start, min(end, limit))
            if not self.week and current[1] >= limit:
                break
        if current is not None:
            yield current

    def _minus_downtimes(self, start, end):
        for down_start, down_end in self.downtimes:
            if down_end <= start or down_start >= end:
                continue
            if down_start > start:
                yield start, down_start
            start = max(start, down_end)
            if start >= end:
                return
        yield start, end

    def place(self, ready, seconds):
        """Work of `seconds` that may begin at `ready`: (start, end), start at the first free instant, end once that
        much free time has passed; None when there is no working time within the horizon."""
        seconds = float(seconds or 0)
        if not seconds <= HORIZON.total_seconds() or ready.year > LAST_YEAR:  # NaN, absurd durations or dates
            return None
        seconds = max(0.0, seconds)
        remaining = timedelta(seconds=seconds)
        start = None
        for free_start, free_end in self.free(ready):
            if start is None:
                start = free_start
            if free_end - free_start >= remaining:
                return start, free_start + remaining
            remaining -= free_end - free_start
        return None
