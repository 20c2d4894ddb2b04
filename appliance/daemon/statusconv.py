"""Progress events (solver.progress) as the Control API's StatusResponse messages."""
from __future__ import annotations

from pybuildkit.appliance.api.proto import control_pb2 as cpb
from pybuildkit.solver.progress import SolveStatus


def timestamp(ns: int | None) -> cpb.Timestamp | None:
    if not ns:
        return None
    return cpb.Timestamp(seconds=ns // 1_000_000_000, nanos=ns % 1_000_000_000)


def to_status_response(status: SolveStatus) -> cpb.StatusResponse:
    out = cpb.StatusResponse()
    for v in status.vertexes:
        vertex = out.vertexes.add(digest=v.digest, inputs=v.inputs, name=v.name, cached=v.cached, error=v.error)
        if v.started:
            vertex.started.CopyFrom(timestamp(v.started))
        if v.completed:
            vertex.completed.CopyFrom(timestamp(v.completed))
        if v.progress_group:
            vertex.progressGroup.id, vertex.progressGroup.name, vertex.progressGroup.weak = v.progress_group
    for s in status.statuses:
        item = out.statuses.add(ID=s.id, vertex=s.vertex, name=s.name, current=s.current, total=s.total)
        for field, ns in (("timestamp", s.timestamp), ("started", s.started), ("completed", s.completed)):
            if ns:
                getattr(item, field).CopyFrom(timestamp(ns))
    for log in status.logs:
        entry = out.logs.add(vertex=log.vertex, stream=log.stream, msg=log.data)
        if log.timestamp:
            entry.timestamp.CopyFrom(timestamp(log.timestamp))
    for w in status.warnings:
        out.warnings.add(vertex=w.vertex, level=w.level, short=w.short, detail=w.detail, url=w.url)
    return out


def from_status_response(msg: cpb.StatusResponse) -> SolveStatus:
    """The client side: a daemon's StatusResponse back into progress events for the displays."""
    from pybuildkit.solver.progress import LogEvent, StatusEvent, VertexEvent, WarningEvent

    def ns(ts: cpb.Timestamp, present: bool) -> int | None:
        return ts.seconds * 1_000_000_000 + ts.nanos if present else None

    status = SolveStatus()
    for v in msg.vertexes:
        group = (v.progressGroup.id, v.progressGroup.name, v.progressGroup.weak) if v.HasField("progressGroup") else None
        status.vertexes.append(VertexEvent(
            digest=v.digest, name=v.name, inputs=list(v.inputs), cached=v.cached,
            started=ns(v.started, v.HasField("started")), completed=ns(v.completed, v.HasField("completed")),
            error=v.error, progress_group=group))
    for s in msg.statuses:
        status.statuses.append(StatusEvent(
            id=s.ID, vertex=s.vertex, name=s.name, current=s.current, total=s.total,
            timestamp=ns(s.timestamp, s.HasField("timestamp")) or 0,
            started=ns(s.started, s.HasField("started")), completed=ns(s.completed, s.HasField("completed"))))
    for log in msg.logs:
        status.logs.append(LogEvent(log.vertex, int(log.stream), bytes(log.msg),
                                    ns(log.timestamp, log.HasField("timestamp")) or 0))
    for w in msg.warnings:
        status.warnings.append(WarningEvent(w.vertex, int(w.level), bytes(w.short), [bytes(d) for d in w.detail], w.url))
    return status
