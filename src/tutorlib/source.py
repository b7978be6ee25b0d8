"""Show the library's own code inside a notebook (Colab cannot read Sphinx's literalinclude)."""

from __future__ import annotations

import inspect


def show(obj) -> None:
    """Display the source code of a tutorlib function, class or method, and return nothing.

    In a notebook the code is shown syntax-highlighted; elsewhere it is printed.
    """
    if not (inspect.isfunction(obj) or inspect.isclass(obj) or inspect.ismethod(obj) or inspect.ismodule(obj)):
        raise ValueError(f"obj must be a function, class, method or module, got {type(obj).__name__}")
    code = inspect.getsource(obj)
    try:
        from IPython import get_ipython
        from IPython.display import Code, display

        if get_ipython() is not None:
            display(Code(code, language="python"))
            return None
    except ImportError:  # pragma: no cover - IPython is a dependency of ipywidgets
        pass
    print(code)
    return None
