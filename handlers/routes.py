"""The routes table: reads like the API document."""

from handlers.errors import ErrorDetailsHandler, ErrorsHandler
from handlers.executions import ExecutionDetailsHandler, ExecutionsHandler
from handlers.health import HealthHandler, MetricsHandler
from handlers.job_types import JobTypeDetailsHandler, JobTypesHandler
from handlers.jobs import (
    JobDetailsHandler,
    JobExecutionsHandler,
    JobsHandler,
    JobUpdatesHandler,
)
from handlers.openapi import OpenAPIHandler
from handlers.queue import NewJobHandler, QueueStatusHandler, RequeueJobsHandler

ID = r"([0-9]{1,18})"

API_ROUTES = [
    (r"/jobs/", JobsHandler),
    (rf"/jobs/{ID}/", JobDetailsHandler),
    (r"/jobs/updates/", JobUpdatesHandler),
    (r"/jobs/executions/", JobExecutionsHandler),
    (r"/job-types/", JobTypesHandler),
    (rf"/job-types/{ID}/", JobTypeDetailsHandler),
    (r"/job-executions/", ExecutionsHandler),
    (rf"/job-executions/{ID}/", ExecutionDetailsHandler),
    (r"/queue/new-job/", NewJobHandler),
    (r"/queue/status/", QueueStatusHandler),
    (r"/queue/requeue-jobs/", RequeueJobsHandler),
    (r"/errors/", ErrorsHandler),
    (rf"/errors/{ID}/", ErrorDetailsHandler),
]

OPS_ROUTES = [
    (r"/health", HealthHandler),
    (r"/metrics", MetricsHandler),
    (r"/openapi.json", OpenAPIHandler),
]


# The job engine's endpoints (workspaces, files, products, nodes, logs).
ENGINE_ROUTES: list = []

# Live updates over WebSocket.
LIVE_ROUTES: list = []

# Browser dashboards.
DASHBOARD_ROUTES: list = []


def routes() -> list:
    return API_ROUTES + ENGINE_ROUTES + LIVE_ROUTES + OPS_ROUTES + DASHBOARD_ROUTES
