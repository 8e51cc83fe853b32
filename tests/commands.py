"""Store commands seen by pymongo's command monitoring, for tests that prove a request does not
scan: registered once, when first imported."""

from pymongo import monitoring


class Aggregates(monitoring.CommandListener):
    """The collections aggregated or counted, and the `$match` of each aggregate on jobs."""

    def __init__(self):
        self.on: list[str] = []
        self.job_matches: list[dict] = []

    def clear(self):
        self.on.clear()
        self.job_matches.clear()

    def started(self, event):
        if event.command_name in ("aggregate", "count"):
            self.on.append(event.command.get(event.command_name))
        if event.command_name == "aggregate" and event.command.get("aggregate") == "jobs":
            first = (event.command.get("pipeline") or [{}])[0]
            self.job_matches.append(first.get("$match", {}))

    def succeeded(self, event):
        pass

    def failed(self, event):
        pass


AGGREGATES = Aggregates()
monitoring.register(AGGREGATES)


class Commands(monitoring.CommandListener):
    """The commands one store's clients sent, as (command name, collection, the command): the
    `commands` fixture, on the store of a test module whose `store_listeners` returns it."""

    def __init__(self):
        self.sent: list[tuple[str, str, dict]] = []

    def started(self, event):
        self.sent.append((event.command_name, str(event.command.get(event.command_name)),
                          event.command))

    def succeeded(self, event):
        pass

    def failed(self, event):
        pass

    def names(self) -> list[str]:
        """Each command sent, as "name collection"."""
        return [f"{name} {collection}" for name, collection, _ in self.sent]
