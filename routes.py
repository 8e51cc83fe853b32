"""The routes table: reads like the API document.

It sits at the server layer, above handlers/, auth/ and live/ (which must not import each other's
handlers; tests/test_layers.py)."""

from auth.login import LoginHandler, LogoutHandler
from handlers import dashboard, engine_api
from handlers.errors import ErrorDetailsHandler, ErrorsHandler
from handlers.executions import ExecutionDetailsHandler, ExecutionsHandler
from handlers.health import HealthHandler, MetricsHandler
from handlers.job_types import JobTypeDetailsHandler, JobTypesHandler
from handlers.jobs import (
    JobDetailsHandler,
    JobExecutionsHandler,
    JobSeriesHandler,
    JobsHandler,
    JobUpdatesHandler,
)
from handlers.openapi import OpenAPIHandler
from handlers.queue import NewJobHandler, QueueStatusHandler, RequeueJobsHandler
from live.socket import JobUpdatesSocket

ID = r"([0-9]{1,18})"

API_ROUTES = [
    (r"/jobs/", JobsHandler),
    (rf"/jobs/{ID}/", JobDetailsHandler),
    (r"/jobs/updates/", JobUpdatesHandler),
    (r"/jobs/executions/", JobExecutionsHandler),
    (r"/jobs/series/", JobSeriesHandler),
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


def public(handler: type) -> type:
    """The handler open without credentials (see auth/identity.py)."""
    return type(handler.__name__, (handler,), {"public": True})


# Open to monitoring and API clients without credentials; they show no job data.
OPS_ROUTES = [
    (r"/health", public(HealthHandler)),
    (r"/metrics", public(MetricsHandler)),
    (r"/openapi.json", public(OpenAPIHandler)),
]

# The dashboard's login page (token or user/password) and logout.
AUTH_ROUTES: list = [
    (r"/login", LoginHandler),
    (r"/logout", LogoutHandler),
]


# The job engine's endpoints (workspaces, files, products, nodes, logs).
ENGINE_ROUTES: list = [
    (r"/workspaces/", engine_api.WorkspacesHandler),
    (rf"/workspaces/{ID}/", engine_api.WorkspaceDetailsHandler),
    (r"/files/", engine_api.FilesHandler),
    (rf"/files/{ID}/", engine_api.FileDetailsHandler),
    (rf"/files/{ID}/download/", engine_api.FileDownloadHandler),
    (r"/products/", engine_api.ProductsHandler),
    (r"/nodes/", engine_api.NodesHandler),
    (rf"/nodes/{ID}/", engine_api.NodeDetailsHandler),
    (rf"/job-executions/{ID}/logs/", engine_api.ExecutionLogsHandler),
    *[(rf"/job-executions/{ID}/logs/{stream}/", engine_api.ExecutionLogDownloadHandler,
       {"stream": stream}) for stream in ("stdout", "stderr")],
]

# Live updates over WebSocket.
LIVE_ROUTES: list = [
    (r"/ws/jobs/updates/", JobUpdatesSocket),
]

# Browser dashboards.
DASHBOARD_ROUTES: list = [
    (r"/", dashboard.OverviewPage),
    (r"/dashboard/overview/live", dashboard.OverviewPage, {"partial": True}),
    (r"/dashboard/jobs", dashboard.JobsPage),
    (rf"/dashboard/jobs/{ID}", dashboard.JobPage),
    (r"/dashboard/job-types", dashboard.JobTypesPage),
    (rf"/dashboard/job-types/{ID}", dashboard.JobTypePage),
    (rf"/dashboard/job-types/{ID}/new-job", dashboard.NewJobPage),
    (r"/dashboard/queue", dashboard.QueuePage),
    (r"/dashboard/queue/live", dashboard.QueuePage, {"partial": True}),
]


def routes() -> list:
    return API_ROUTES + ENGINE_ROUTES + LIVE_ROUTES + OPS_ROUTES + AUTH_ROUTES + DASHBOARD_ROUTES
