"""Register Zemi with transformers' Auto API when a program uses that API, not when it imports `zemi`.

Registering needs the model classes, i.e. torch and transformers (seconds to import); the file-reading tools
(`python -m zemi.report`, ...) need neither. So `import zemi` only installs an import hook: once transformers'
`configuration_auto` or `modeling_auto` has been imported, and no module that registering imports (transformers,
zemi.models) is half-way through its own import, `zemi.models` is imported, which registers the classes (`zemi.models.auto`), and the hook
removes itself. Standard library only.
"""

from __future__ import annotations

import sys

AUTO_MODULES = ("transformers.models.auto.configuration_auto", "transformers.models.auto.modeling_auto")
REGISTERING_MODULE = "zemi.models.auto"
IMPORTED_BY_REGISTERING = ("transformers.", "zemi.models", "zemi.errors")  # name prefixes


def _initializing(name: str) -> bool:
    spec = getattr(sys.modules.get(name), "__spec__", None)
    return bool(getattr(spec, "_initializing", False))


def _register_if_ready(just_imported: str | None = None) -> None:
    if REGISTERING_MODULE in sys.modules:  # registered, or being registered further up the import stack
        _uninstall()
        return
    if not any(name in sys.modules for name in AUTO_MODULES):
        return
    # Importing zemi.models now, from inside another import of transformers or zemi, could meet a half-imported
    # module; a later import (the outer one finishing) tries again.
    if any(_initializing(name) for name in list(sys.modules)
           if name != just_imported and name.startswith(IMPORTED_BY_REGISTERING)):
        return
    _uninstall()
    import zemi.models.auto  # noqa: F401  (registers)


# The finder and loader follow importlib's protocols without subclassing importlib.abc, whose import costs more
# than all the rest of `import zemi`.
class _Loader:
    """Runs the real loader, then tries to register; afterwards the module keeps its real loader."""

    def __init__(self, loader):
        self.loader = loader

    def create_module(self, spec):
        return self.loader.create_module(spec)

    def exec_module(self, module) -> None:
        module.__loader__ = module.__spec__.loader = self.loader
        self.loader.exec_module(module)
        _register_if_ready(module.__name__)

    def __getattr__(self, name: str):  # get_code, get_source, is_package, ...: the real loader's
        return getattr(self.loader, name)


class _Finder:
    """Wraps the loader of every module that registering imports, while registration is pending."""

    def find_spec(self, name, path, target=None):
        if not name.startswith(IMPORTED_BY_REGISTERING):
            return None
        others = [finder for finder in sys.meta_path if finder is not self]
        for finder in others:
            spec = finder.find_spec(name, path, target) if hasattr(finder, "find_spec") else None
            if spec is not None:
                if spec.loader is not None and hasattr(spec.loader, "exec_module"):
                    spec.loader = _Loader(spec.loader)
                return spec
        return None


_FINDER = _Finder()


def _uninstall() -> None:
    if _FINDER in sys.meta_path:
        sys.meta_path.remove(_FINDER)


def install() -> None:
    """Register now if transformers' Auto API is already imported, else as soon as it is."""
    if _FINDER not in sys.meta_path:
        sys.meta_path.insert(0, _FINDER)
    _register_if_ready()
