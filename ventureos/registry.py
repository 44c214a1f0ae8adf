"""One way to choose a backend: a small registry per kind (catalog, storage, queue, serving).

Each kind declares its registry next to its interface, with the module of every backend it knows::

    QUEUES = Registry[FeedQueue]("queue backend", {"sqlite": "ventureos.queue.sqlite", "sqs": "ventureos.queue.sqs"})

and each backend module registers its factory under its name (a class is a factory too)::

    @QUEUES.register("sqs")
    class SqsQueue(FeedQueue): ...

``QUEUES.create(settings.queue_backend, settings)`` then imports only the chosen backend's module (so
an embedded run never imports boto3 for a backend it does not use) and calls its factory; an unknown
name fails with the names it could have been. Adding a backend: write the module, register the
factory, add its name and module to the kind's registry (and to the setting's allowed values).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from typing import Any, Generic, TypeVar

T = TypeVar("T")
F = TypeVar("F", bound=Callable[..., Any])


class UnknownBackendError(ValueError):
    """A setting names a backend that no module registers."""


class Registry(Generic[T]):
    """Factories of one kind of backend, by name; a backend's module is imported the first time it is chosen."""

    def __init__(self, kind: str, modules: Mapping[str, str] | None = None) -> None:
        self.kind = kind
        """What the backends are, for messages (``"serving backend"``)."""
        self.modules = dict(modules or {})
        """Backend name -> the module that registers it (imported on first use)."""
        self._factories: dict[str, Callable[..., T]] = {}

    def register(self, name: str) -> Callable[[F], F]:
        """Decorator: register a factory (a function or a class) of this kind's backend ``name``."""

        def decorate(factory: F) -> F:
            self._factories[name] = factory
            return factory

        return decorate

    @property
    def names(self) -> list[str]:
        """Every backend name this registry can create."""
        return sorted(set(self.modules) | set(self._factories))

    def factory(self, name: str) -> Callable[..., T]:
        """The factory registered as ``name``, importing its module first if needed."""
        if name not in self._factories and name in self.modules:
            importlib.import_module(self.modules[name])
        try:
            return self._factories[name]
        except KeyError:
            raise UnknownBackendError(
                f"unknown {self.kind} {name!r}; known: {', '.join(self.names)}"
            ) from None

    def create(self, name: str, *args: Any, **kwargs: Any) -> T:
        """A new backend ``name``, built by its factory from the given arguments."""
        return self.factory(name)(*args, **kwargs)
