"""impasto worker: the Celery task that runs style-transfer jobs, and the engine."""
