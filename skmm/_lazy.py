"""Names of a package imported on first use (PEP 562), so that importing the package stays cheap."""

from importlib import import_module


def lazy_names(namespace, table):
    """``__getattr__`` and ``__dir__`` for the package whose globals are ``namespace``.

    ``table`` maps each lazy name to the submodule, relative to the package, that defines it.
    A name is imported on its first lookup and kept in ``namespace``, so that later lookups skip
    ``__getattr__``. Code that patches such a name must patch it in the module that uses it.
    """
    package = namespace["__name__"]

    def __getattr__(name):
        module = table.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(import_module(f".{module}", package), name)
        namespace[name] = value  # later lookups skip this function
        return value

    def __dir__():
        return sorted({*namespace, *table})

    return __getattr__, __dir__
