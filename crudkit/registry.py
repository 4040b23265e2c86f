"""The registry of resources, and `register()` in its two forms::

    crudkit.register(Category)                  # defaults

    @crudkit.register(Product)                  # with options
    class ProductResource(crudkit.Resource):
        public_read = True

`crudkit.register` registers on `default_registry`, which a project serves for the
models of its installed apps. Tests may build their own `Registry` and pass it to
`create_app`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any, TypeVar

from crudkit.exceptions import ImproperlyConfigured
from crudkit.resources import Resource

R = TypeVar("R", bound=type[Resource])


class Registry:
    """Resources by model, in registration order."""

    def __init__(self) -> None:
        self._resources: dict[type[Any], Resource] = {}

    def register(
        self, model: type[Any], resource_class: type[Resource] | None = None
    ) -> Callable[[R], R]:
        """Register `model` now; the returned decorator swaps in a `Resource` subclass."""
        if model in self._resources and not self._is_default(model):
            raise ImproperlyConfigured(f"{model.__name__} is already registered")
        self._add(model, resource_class or Resource)

        def decorator(cls: R) -> R:
            if not (isinstance(cls, type) and issubclass(cls, Resource)):
                raise ImproperlyConfigured(
                    f"@register({model.__name__}) decorates crudkit.Resource subclasses, "
                    f"not {cls!r}"
                )
            self._add(model, cls)
            return cls

        return decorator

    def _is_default(self, model: type[Any]) -> bool:
        # The function form registered defaults; the decorator form may then replace them.
        return type(self._resources[model]) is Resource

    def _add(self, model: type[Any], resource_class: type[Resource]) -> None:
        resource = resource_class(model, self)
        path = resource.path_segment
        for other in self._resources.values():
            if other.model is not model and other.path_segment == path and other.api:
                raise ImproperlyConfigured(
                    f"{model.__name__} and {other.model.__name__} would both be served at "
                    f"{path!r}; set Resource.path on one of them"
                )
        self._resources[model] = resource

    def unregister(self, model: type[Any]) -> None:
        self._resources.pop(model, None)

    def get(self, model: type[Any]) -> Resource | None:
        return self._resources.get(model)

    def __getitem__(self, model: type[Any]) -> Resource:
        try:
            return self._resources[model]
        except KeyError:
            raise KeyError(f"{model.__name__} is not registered") from None

    def __contains__(self, model: object) -> bool:
        return model in self._resources

    def __iter__(self) -> Iterator[Resource]:
        return iter(list(self._resources.values()))

    def __len__(self) -> int:
        return len(self._resources)


default_registry = Registry()


def register(model: type[Any], resource_class: type[Resource] | None = None) -> Callable[[R], R]:
    """Register `model` on the default registry (see `Registry.register`)."""
    return default_registry.register(model, resource_class)
