"""``restart_client``: the client replaced by a new one (a new pod): a new connection, a fresh
DNS look-up. Where proxy replicas were added, it counts their requests before and after (the
``scale_proxies`` finding reads them)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from hellolb_lab.phases.base import Phase

if TYPE_CHECKING:
    from hellolb_lab.clusterrun import ClusterRun
    from hellolb_lab.stage import Stage

NAME = "restart_client"


def lab(stage: Stage) -> None:
    """Replace the client with a new one, then let it run for ``restart`` seconds."""
    if stage.proxies:
        stage.count_proxy_requests("before_restart")
    stage.restart_client()
    stage.hold(stage.plan.options.restart)
    if stage.proxies:
        stage.count_proxy_requests("after_restart")


def cluster(run: ClusterRun) -> None:
    """Start the client afresh, then count the new proxies' requests again (if any)."""
    run.cluster.restart_client()
    restarted = run.clock()
    run.sleep(run.plan.scenario.watch.phase_s)
    if run.new_proxies:
        run.proxy_requests["after_restart"] = run.proxy_requests_since(restarted)


PHASE = Phase(name=NAME, lab=lab, cluster=cluster, clients_added=1)
