"""The schedule of workstations' queues (production.md §2.8): estimated start and end of every run, from pure data
(no store: services.production.scheduler gathers the data and writes the dates).

The rules:
* a workstation works its runs in queue order, up to `in_progress_max` at once (that many lanes); a run takes the
  lane that frees first;
* a run starts no earlier than now, its lane's free time and the estimated end of every run holding a previous step
  (not complete yet) of one of its prints;
* its duration is counted in working time only (services.production.calendar: the work-schedule's windows, minus
  the workstation's downtimes);
* a run in progress keeps its lane from its real start until its estimated end (now at the earliest, when it is
  overdue);
* a run whose previous step has no estimate (its run has no workstation yet, or none can be found) has none either,
  and takes no lane.
`available_at`: when a run added at the end of the workstation's queue could start.
"""
from dataclasses import dataclass, field

from services.production.calendar import WorkingTime


@dataclass
class Job:
    """One run to place: its workstation, its working seconds, the runs it waits for (`after`) and, when in
    progress, its real start."""

    key: str
    station: str
    seconds: float
    after: list = field(default_factory=list)
    started: object = None  # datetime


@dataclass
class Station:
    key: str
    lanes: int = 1
    working: WorkingTime = field(default_factory=WorkingTime)
    queue: list = field(default_factory=list)  # waiting runs, in queue order
    running: list = field(default_factory=list)  # runs in progress (or paused)


@dataclass
class Plan:
    runs: dict  # run key → (start, end), or None when it cannot be estimated
    available_at: dict  # station key → datetime or None


def plan(stations, jobs, now, known_ends=None):
    """`stations`: the Stations to schedule; `jobs`: {key: Job} of their runs; `known_ends`: {run key: end or None}
    for the runs outside this pass that some job waits for (their stored estimates)."""
    ends = dict(known_ends or {})
    runs = {}
    lanes = {}
    for station in stations:
        lanes[station.key] = [now] * max(1, int(station.lanes or 1))
        for key in station.running:
            job = jobs[key]
            placed = station.working.place(job.started or now, job.seconds)
            start = job.started or (placed[0] if placed else now)
            end = max(placed[1], now) if placed else None
            runs[key], ends[key] = ((start, end) if end else None), end
            free = lanes[station.key]
            free[free.index(min(free))] = end or now
    waiting = {key for station in stations for key in station.queue}
    pointers = {station.key: 0 for station in stations}
    progress = True
    while progress:
        progress = False
        for station in stations:
            free = lanes[station.key]
            while pointers[station.key] < len(station.queue):
                key = station.queue[pointers[station.key]]
                job = jobs[key]
                if any(dep in waiting for dep in job.after):
                    break  # its previous step is still to be placed in this pass (on another station)
                pointers[station.key] += 1
                waiting.discard(key)
                progress = True
                upstream = [ends.get(dep) for dep in job.after]
                placed = None
                if all(end is not None for end in upstream):
                    lane = free.index(min(free))
                    placed = station.working.place(max([now, free[lane], *upstream]), job.seconds)
                    if placed is not None:
                        free[lane] = placed[1]
                runs[key], ends[key] = placed, placed[1] if placed else None
    for key in waiting:  # waiting on each other across stations (no order satisfies both queues)
        runs[key] = None
    available = {}
    for station in stations:
        placed = station.working.place(max(now, min(lanes[station.key])), 0)
        available[station.key] = placed[0] if placed else None
    return Plan(runs, available)
