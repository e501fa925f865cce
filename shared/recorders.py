"""The PostgreSQL recorders the event stores use: eventsourcing's, without the NOTIFY it sends in every recording
transaction. Nothing here LISTENs (followers learn of new events from RabbitMQ's doorbells and their timers, never
from eventsourcing's `subscribe`), and a NOTIFY is not free: the client composes one more statement per write, and
the server queues the notification at commit under a lock that every notifying transaction of the whole cluster
takes in turn."""
from eventsourcing.postgres import PostgresApplicationRecorder, PostgresProcessRecorder


class _Unannounced:
    def _notify_channel(self, curs):
        pass


class ApplicationRecorder(_Unannounced, PostgresApplicationRecorder):
    pass


class ProcessRecorder(_Unannounced, PostgresProcessRecorder):
    pass
