"""Loading a command-line tool of ``tools/`` as a module (``tools`` is not a package)."""
import importlib.util
from types import ModuleType


def load_tool(name: str) -> ModuleType:
    """``tools/<name>.py`` as a fresh module, e.g. ``load_tool("sweep").main(argv)``."""
    from .conftest import REPO_ROOT

    spec = importlib.util.spec_from_file_location(f"tools_{name}", REPO_ROOT / "tools" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
