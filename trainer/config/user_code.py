"""Importing the user's own code: a "package.module:factory" reference, for models
(trainer.models.builtin) and datasets (trainer.data.datasets). Stdlib only.

The module is imported with `path` (the config file's folder, or model.path / data.path) first on
sys.path, then from the installed packages. Every failure is a `FactoryError` with a cause and a fix
that name the module; the caller turns it into its own error (ModelError, DatasetUnavailable).
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
import threading
import time
from typing import Any, Callable, TypeVar

T = TypeVar("T")

#: A call into the user's code that has not returned after this long is reported, then every REPORT_EVERY_S.
SLOW_AFTER_S = 1.0
REPORT_EVERY_S = 5.0
_reporter: Callable[[str], None] | None = None


def set_reporter(report: Callable[[str], None] | None) -> None:
    """Where "calling your factory ... 12 s" goes while the user's code runs long (the console, the
    app's start-up line); None: nowhere."""
    global _reporter
    _reporter = report


class FactoryError(Exception):
    """A factory reference that cannot be resolved: `cause` and `fix` name the module."""

    def __init__(self, cause: str, fix: str) -> None:
        self.cause, self.fix = cause, fix
        super().__init__(f"{cause}. Fix: {fix}")


def guarded(doing: str, subject: str, fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> T:
    """`fn(*args, **kwargs)`, the user's code, under a guard: a SystemExit it raises (sys.exit, exit())
    becomes a FactoryError naming `subject` instead of ending the trainer; while it runs past
    SLOW_AFTER_S, "`doing` ... N s" is reported every REPORT_EVERY_S (a factory that hangs is seen)."""
    done = threading.Event()
    report, start = _reporter, time.monotonic()
    if report is not None:

        def watch() -> None:
            wait = SLOW_AFTER_S
            while not done.wait(wait):
                try:
                    report(
                        f"{doing} ... {time.monotonic() - start:.0f} s (it has not returned yet; Ctrl-C stops)"
                    )
                except Exception:  # noqa: BLE001 - a report that fails must not end the watch with an error
                    return
                wait = REPORT_EVERY_S

        threading.Thread(target=watch, name="bstui-factory-watch", daemon=True).start()
    try:
        return fn(*args, **kwargs)
    except SystemExit as exc:
        raise FactoryError(
            f"{subject} called sys.exit({exc.code!r}), which would end the trainer",
            "return the value instead of exiting (raise an exception to report a problem)",
        ) from None
    finally:
        done.set()


def import_factory(ref: str, path: str, path_key: str) -> Callable[..., Any]:
    """The callable `ref` ("package.module:factory") names, imported with `path` first on sys.path;
    `path_key` names the setting that moves `path` (model.path), for messages."""
    module_name, attr = ref.split(":", 1)
    where = path or "the current folder"
    if path and path not in sys.path:
        sys.path.insert(0, path)  # the config's folder first: the user's project wins over installed names
    try:
        module = guarded(
            f"importing your module {module_name}",
            f"module {module_name}, while it was imported,",
            importlib.import_module,
            module_name,
        )
    except FactoryError:
        raise
    except ModuleNotFoundError as exc:
        missing = exc.name or ""
        if missing and module_name != missing and not module_name.startswith(missing + "."):
            raise FactoryError(
                f"module {module_name} was found, but it imports {missing}, which is not installed",
                f"install {missing} into the trainer's Python ({sys.executable})",
            ) from exc
        file = module_name.replace(".", "/")
        raise FactoryError(
            f"no module named {module_name} in {where} ({path_key}: the config file's folder "
            "unless set) or among the installed packages",
            f"put {file}.py (or the package {file}/) in {where}, set {path_key} to the folder that "
            "holds it, or install it (pip install -e your project)",
        ) from exc
    except Exception as exc:  # noqa: BLE001 - a syntax error or any failure while the module runs
        raise FactoryError(
            f"importing module {module_name} raised {one_line(exc)}",
            f"fix the module ({module_file(module_name)})",
        ) from exc
    factory = getattr(module, attr, None)
    if factory is None:
        known = sorted(
            n
            for n, v in vars(module).items()
            if callable(v) and not n.startswith("_") and getattr(v, "__module__", None) == module.__name__
        )
        hint = f"; it defines {', '.join(known[:8])}" if known else ""
        raise FactoryError(
            f"module {module_name} ({module_file(module_name)}) has no {attr}{hint}",
            f'name a function of the module after the colon, as in "{module_name}:build"',
        )
    if not callable(factory):
        raise FactoryError(
            f"{attr} in module {module_name} is {kind(factory)}, not a callable",
            "name a function (or class) that returns it",
        )
    return factory


def one_line(exc: BaseException) -> str:
    """An exception as one short line: "TypeError: ..."."""
    text = f"{type(exc).__name__}: {exc}".splitlines()[0] if str(exc) else type(exc).__name__
    return text if len(text) <= 300 else text[:297] + "..."


def kind(value: Any) -> str:
    """What a value is, for messages: "a list", "None"."""
    return "None" if value is None else f"a {type(value).__name__}"


def module_file(module_name: str) -> str:
    """The file a module is (or would be) loaded from, for messages; the name when unknown."""
    module = sys.modules.get(module_name)
    if module is not None and getattr(module, "__file__", None):
        return str(module.__file__)
    try:
        spec = importlib.util.find_spec(module_name)
    except Exception:  # noqa: BLE001 - a parent package that fails to import: the name must do
        return module_name
    return str(spec.origin) if spec is not None and spec.origin else module_name
