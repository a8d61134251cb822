"""The impasto Python client: `from impasto import Client` (needs only requests)."""

from impasto.client import Client
from impasto.errors import ImpastoError
from impasto.models import FINISHED, Job, JobPage, JobParams
from impasto.sse import Event

__all__ = ["FINISHED", "Client", "Event", "ImpastoError", "Job", "JobPage", "JobParams"]
