"""The shared recording step of a run, wrapped (`wrapper`) or watched (`watch`): the facts
gathered on a thread while the command runs, the event built, recorded and sent under the
consent the run decided once (`consent.decision.Verdict`), which the recording and sending checks
receive instead of asking `consent` again.

Imported after the child has started; everything it loads beyond that is loaded on the
prefetch thread or once the command has ended.
"""

from __future__ import annotations

import os
import time

from send_metrics.run.spec import args_allowed

TYPE_CHECKING = False
if TYPE_CHECKING:
    from send_metrics.child import ChildResult
    from send_metrics.consent.decision import Verdict
    from send_metrics.delivery.sinks import HttpClient
    from send_metrics.event.event import Breakdown, Event
    from send_metrics.facts.facts import GitFacts, MachineFacts
    from send_metrics.lean import threads
    from send_metrics.run.spec import RunSpec
    from send_metrics.settings.config import Settings
    from send_metrics.settings.destination import Target

# Deferred imports: the facts, the sinks and the store load on the prefetch thread while the
# command runs; the event and delivery once it has ended.


class Prefetch:
    """Work done on a thread while the child runs (only once consent is known): the imports and
    connection the report needs, and the git and machine facts."""

    def __init__(self, settings: Settings, connect: bool = True, inline: bool = False):
        self.settings = settings
        self.connect = connect  # never for preview and --dry-run: they touch no network
        self.git: GitFacts | None = None
        self.machine: MachineFacts | None = None
        self.client: HttpClient | None = None
        self.thread: threads.Worker | None = None
        if inline:  # the facts only (git is bounded); the sender connects on its own thread
            self._work()
            return
        from send_metrics.lean import threads

        try:
            self.thread = threads.start_thread(self._work, "send_metrics-prefetch")
        except RuntimeError:  # no thread left (ulimit -u): the facts are made at the end
            pass

    def _work(self) -> None:
        try:
            self._gather()
        except BaseException:  # noqa: S110 - a fact we could not gather is unknown (null), and
            pass  # a thread's traceback would land in the middle of the command's output

    def _gather(self) -> None:
        from send_metrics.facts import facts

        git = facts.start_git()  # git runs on another core while the imports below load
        # Imported here, on the thread, so the main thread never waits for them.
        from send_metrics.delivery import delivery, sinks
        from send_metrics.event import event, store  # noqa: F401
        from send_metrics.settings.destination import destination

        target: Target | None = destination(self.settings)[0]
        if target is not None:
            import _socket  # noqa: F401 - the HTTP client's; never for the local sink

            if target.url[:6].lower() == "https:":
                import ssl  # noqa: F401 - the costliest, for https endpoints only
        self.machine = facts.machine_facts()
        self.git = facts.git_facts(
            self.settings.app, started=git, hash_remote=self.settings.git_remote_hash
        )
        # Last: a hanging DNS must not cost the facts above. Not while backing off: an offline
        # laptop's runs only queue, and never wait for the network.
        if target is not None and self.connect and not delivery.backing_off(self.settings, target):
            sinks.warm(target)
            client = sinks.HttpClient(
                time.monotonic() + self.settings.deadline,
                target.ca_bundles,
                client_cert=target.client_cert,
            )
            client.prepare(target.url)
            self.client = client

    def join(self, until: float) -> tuple[GitFacts | None, MachineFacts]:
        """The facts gathered by `until`; machine facts are cheap and made here if missing."""
        if self.thread is not None:
            self.thread.join(max(0.0, until - time.monotonic()))
        if self.machine is None:
            from send_metrics.facts import facts

            self.machine = facts.machine_facts()
        return self.git, self.machine

    def ready_client(self) -> HttpClient | None:
        """The prepared connection, only once the thread is done with it."""
        return self.client if self.thread is not None and not self.thread.is_alive() else None


def build(
    spec: RunSpec,
    settings: Settings,
    anonymous_id: str,
    result: ChildResult,
    prefetch: Prefetch,
    until: float,
    make: Breakdown | None = None,
    derived: bool = False,
) -> Event:
    from send_metrics.event.event import Identity, build_event

    git, machine = prefetch.join(until)
    if git is not None and not settings.git_remote_hash:
        git = git._replace(remote_hash=None)  # the operator's opt-in: guessable for public repos
    args = list(spec.args) if args_allowed(spec, settings.allow_args) else None
    identity = Identity(anonymous_id, settings.app, settings.app_version, settings.consent_version)
    command, command_type = spec.command, spec.command_type
    if spec.goals is not None:  # `run -- make GOALS`: named as the include line names a run
        from send_metrics.make.trace import command_of

        goals, directory = spec.goals
        command_type = "make"
        if command == (goals or "make"):  # not a --name
            command = command_of(goals.split(), os.path.abspath(directory or "."))
    return build_event(identity, command, args, command_type, result, git, machine, make, derived)


def record(
    spec: RunSpec,
    verdict: Verdict,
    result: ChildResult,
    prefetch: Prefetch,
    made: Breakdown | None = None,
    derived: bool = False,
) -> None:
    """Build the run's event and hand it to delivery with the run's consent, within the
    operator's deadline (the facts get all of it but the last 0.2 s)."""
    from send_metrics.delivery import delivery

    settings = verdict.settings
    deadline = time.monotonic() + settings.deadline
    event = build(
        spec,
        settings,
        verdict.decision.anonymous_id,
        result,
        prefetch,
        deadline - 0.2,
        made,
        derived,
    )
    delivery.report(event, verdict, deadline, prefetch.ready_client())
