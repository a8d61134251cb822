"""The background processes that are neither API nor GPU worker: the reconciler (lost messages,
expired leases, retention) and webhook delivery. They import shared, never api or worker."""
