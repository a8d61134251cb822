"""What the API and the worker both speak: settings, SQL, the job schema, storage, Celery."""
