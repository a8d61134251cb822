"""The `impasto` command line: one module per group of commands, loaded lazily by `main`."""
