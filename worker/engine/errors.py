"""The one exception the engine raises for bad input."""


class EngineError(ValueError):
    """A parameter, image or weights file the engine cannot use; the message says why."""
