"""`du` and `prune` output in buildctl's shapes (compat client-output s5a/s5b/s5c)."""
from __future__ import annotations

import datetime
from collections.abc import Iterable, Sequence
from typing import TextIO

from pybuildkit.appliance.api.proto import control_pb2 as cpb

_UNITS = ("B", "kB", "MB", "GB", "TB", "PB")


def human_size(size: int) -> str:
    if size <= 0:
        return "0B"
    value = float(size)
    unit = 0
    while value >= 1000 and unit < len(_UNITS) - 1:
        value /= 1000
        unit += 1
    return f"{int(value)}B" if unit == 0 else f"{value:.2f}{_UNITS[unit]}"


def _time(ts: cpb.Timestamp) -> str:
    moment = datetime.datetime.fromtimestamp(ts.seconds, datetime.timezone.utc)
    return moment.strftime("%Y-%m-%d %H:%M:%S") + f".{ts.nanos:09d} +0000 UTC"


def _reclaimable(record: cpb.UsageRecord) -> bool:
    return not record.InUse


def print_verbose(records: Iterable[cpb.UsageRecord], out: TextIO) -> None:
    for r in records:
        print(f"ID:\t\t{r.ID}", file=out)
        if r.Parents:
            print(f"Parents:\t{';'.join(r.Parents)}", file=out)
        print(f"Created at:\t{_time(r.CreatedAt)}", file=out)
        print(f"Mutable:\t{str(r.Mutable).lower()}", file=out)
        print(f"Reclaimable:\t{str(_reclaimable(r)).lower()}", file=out)
        print(f"Shared:\t\t{str(r.Shared).lower()}", file=out)
        print(f"Size:\t\t{human_size(r.Size)}", file=out)
        if r.Description:
            print(f"Description:\t{r.Description}", file=out)
        print(f"Usage count:\t{r.UsageCount}", file=out)
        if r.HasField("LastUsedAt") and r.LastUsedAt.seconds:
            print(f"Last used:\t{_time(r.LastUsedAt)}", file=out)
        if r.RecordType:
            print(f"Type:\t\t{r.RecordType}", file=out)
        print(file=out)


def print_table(records: Sequence[cpb.UsageRecord], out: TextIO) -> None:
    print(f"{'ID':<28}{'RECLAIMABLE':<14}{'SIZE':<12}LAST ACCESSED", file=out)
    for r in records:
        last = _time(r.LastUsedAt) if r.LastUsedAt.seconds else ""
        print(f"{r.ID + ('*' if r.Shared else ''):<28}{str(_reclaimable(r)).lower():<14}"
              f"{human_size(r.Size):<12}{last}", file=out)


def print_totals(records: Sequence[cpb.UsageRecord], out: TextIO, *, reclaimable: bool = True) -> None:
    total = sum(r.Size for r in records)
    if reclaimable:
        print(f"Reclaimable:\t{human_size(sum(r.Size for r in records if _reclaimable(r)))}", file=out)
        print(f"Total:\t\t{human_size(total)}", file=out)
    else:
        print(f"Total:\t{human_size(total)}", file=out)
