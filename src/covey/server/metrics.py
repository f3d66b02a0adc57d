"""The relay's Prometheus metrics (`/metrics`): one registry per app, so two apps in one
process (the tests) never share counters. Only counts and timings: no ids, no content."""

from __future__ import annotations

import contextlib
from collections.abc import Awaitable, Callable

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)

_LATENCY_BUCKETS = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0,
                    2.5, 5.0, 10.0)


class Metrics:
    def __init__(self, node_id: str) -> None:
        self.node_id = node_id
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.messages_accepted = Counter(
            "covey_messages_accepted", "messages committed for delivery", registry=r)
        self.deliveries = Counter(
            "covey_deliveries", "delivery frames handed to a device's WebSocket",
            ["source"], registry=r)
        self.websocket_connections = Gauge(
            "covey_websocket_connections", "open delivery WebSockets on this node",
            registry=r)
        self.send_to_commit = Histogram(
            "covey_send_to_commit_seconds", "from a send frame's arrival to its commit",
            buckets=_LATENCY_BUCKETS, registry=r)
        self.commit_to_delivery = Histogram(
            "covey_commit_to_delivery_seconds", "from a message's server timestamp (taken "
            "as it is committed) to its hand-off to a live recipient connection, on this "
            "node or another", buckets=_LATENCY_BUCKETS, registry=r)
        self.cluster_notification = Histogram(
            "covey_cluster_notification_seconds", "from another node's publish of a "
            "delivery notification to its arrival here", buckets=_LATENCY_BUCKETS,
            registry=r)
        self.reports_filed = Counter(
            "covey_reports_filed", "reports accepted from users", registry=r)
        self.detections = Counter(
            "covey_detections", "detector signals raised on scanned messages",
            ["detector"], registry=r)
        self.scan_queue_depth = Gauge(
            "covey_scan_queue_depth", "scan jobs waiting (read at scrape time)", registry=r)
        self.rate_limit_refusals = Counter(
            "covey_rate_limit_refusals", "requests refused by a rate limit", ["action"],
            registry=r)
        self.cluster_peers = Gauge(
            "covey_cluster_peers", "other live nodes seen in the cluster's lease rows",
            registry=r)
        self.cluster_leader = Gauge(
            "covey_cluster_leader", "1 on the node that runs the once-per-cluster work "
            "(retention purges)", registry=r)
        self.notifications_lost = Counter(
            "covey_cluster_notifications_lost", "delivery notifications that could not be "
            "published to NATS (the devices catch up from the database)", registry=r)
        self.info = Gauge("covey_node_info", "this node", ["node_id"], registry=r)
        self.info.labels(node_id=node_id).set(1)
        self._before_scrape: list[Callable[[], Awaitable[None]]] = []

    def before_scrape(self, refresh: Callable[[], Awaitable[None]]) -> None:
        """Run `refresh` (e.g. read the scan queue's depth) before each scrape."""
        self._before_scrape.append(refresh)

    async def render(self) -> tuple[bytes, str]:
        for refresh in self._before_scrape:
            with contextlib.suppress(Exception):  # an unreadable gauge keeps its value
                await refresh()
        return generate_latest(self.registry), CONTENT_TYPE_LATEST
