"""Drag a live ipywidgets slider in JupyterLab, in headless Chromium, and check that it redraws.

    python tools/lab_check.py [--chromium /usr/bin/chromium] [--timeout 90] [--screenshot FILE]

What a reader does after ``make setup && make lab``, done by a machine:

1. the widget manager JupyterLab will load and the kernel's ipywidgets must agree (their
   versions are compared first, and a mismatch stops the check with a message naming both);
2. JupyterLab is started on 127.0.0.1 with a random token, in a temporary directory holding a
   small notebook whose one cell calls :func:`tutorlib.widgets.explore` (the book's slider
   mechanism: static view, kernel-free frames and the live slider);
3. Chromium opens the notebook and runs it; the kernel-free frame slider of the same output
   (the one the rendered book uses) must answer the keyboard inside JupyterLab (End shows the
   last frame); then it waits for the live slider and its figure, drags the slider's handle with
   the mouse, and waits for the figure to be redrawn;
4. it fails on a console error, an uncaught exception, a widget that cannot be displayed (the
   symptom of a widget-manager / ipywidgets mismatch), or a figure that does not change; every
   wait has a timeout, and the server is shut down in all cases.

Nothing outside the machine is contacted: JupyterLab's news and update checks are off, and the
browser blocks (and reports) any request that is not to 127.0.0.1. Exits 1 on any problem.
"""

from __future__ import annotations

import argparse
import importlib.metadata as metadata
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools"))

from browser_check import CHROMIUM_ARGS, _local_only  # noqa: E402  (the same browser, offline)

MANAGER = "@jupyter-widgets/jupyterlab-manager"

# The notebook's only cell: the book's own slider mechanism over a cheap, pure drawing function.
CELL = '''\
import matplotlib
matplotlib.use("module://matplotlib_inline.backend_inline")
from tutorlib import widgets

def draw(ax, slope):
    ax.plot([0, 1], [0, slope], lw=4, color="C1")
    ax.set_ylim(-3, 3)
    ax.set_title(f"slope = {slope}")

widgets.explore(draw, "slope", [-2, -1, 0, 1, 2], static=[-2, 0, 2], value=0, title="lab check")
'''


class LabCheckError(RuntimeError):
    """The live-slider check failed; the message says why."""


# --- 1. versions ------------------------------------------------------------------------------

def _requirement_of(dist: str, name: str) -> str | None:
    """The version specifier that distribution ``dist`` declares for ``name`` (None if it declares none)."""
    from packaging.requirements import Requirement

    for line in metadata.requires(dist) or []:
        req = Requirement(line)
        if req.marker is None and req.name.lower().replace("-", "_") == name.lower().replace("-", "_"):
            return str(req.specifier)
    return None


def version_problems(ipywidgets: str, jupyterlab_widgets: str, required: str | None,
                     manager: str | None, manager_source: str | None) -> list[str]:
    """Why the kernel's ipywidgets and JupyterLab's widget manager would disagree (empty if they agree).

    ``required``: the specifier ipywidgets declares for jupyterlab_widgets (e.g. ``~=3.0.17``);
    ``manager``: the version of the widget-manager lab extension JupyterLab lists (None: not found);
    ``manager_source``: the package JupyterLab says that extension comes from.
    """
    from packaging.specifiers import SpecifierSet

    problems = []
    if required is not None and jupyterlab_widgets not in SpecifierSet(required):
        problems.append(f"ipywidgets {ipywidgets} needs jupyterlab_widgets{required}, but jupyterlab_widgets "
                        f"{jupyterlab_widgets} is installed: the live sliders would not display "
                        f"(reinstall with `make setup`, or pip install 'jupyterlab_widgets{required}')")
    if manager is None:
        problems.append(f"JupyterLab lists no {MANAGER} extension: widgets cannot be displayed "
                        f"(jupyterlab_widgets {jupyterlab_widgets} is installed but not seen by JupyterLab)")
    elif manager_source is not None and manager_source != "jupyterlab_widgets":
        problems.append(f"JupyterLab loads {MANAGER} {manager} from {manager_source!r}, not from the installed "
                        f"jupyterlab_widgets {jupyterlab_widgets}: uninstall the other copy")
    return problems


def lab_extension() -> tuple[str | None, str | None]:
    """The widget manager JupyterLab will load: its version and the package that installed it.

    Read as ``jupyter labextension list`` does: the first ``labextensions`` directory on Jupyter's
    data path that holds the extension wins (a user-level copy shadows the environment's)."""
    from jupyter_core.paths import jupyter_path

    for base in jupyter_path("labextensions"):
        pkg = Path(base, *MANAGER.split("/"), "package.json")
        if pkg.is_file():
            version = json.loads(pkg.read_text()).get("version")
            install = pkg.with_name("install.json")
            source = json.loads(install.read_text()).get("packageName") if install.is_file() else str(pkg.parent)
            return version, source
    return None, None


def check_versions(jupyter: Path) -> dict:
    try:
        ipyw, jlw = metadata.version("ipywidgets"), metadata.version("jupyterlab_widgets")
    except metadata.PackageNotFoundError as err:
        raise LabCheckError(f"{err.name} is not installed: run `make setup`") from None
    manager, source = lab_extension()
    problems = version_problems(ipyw, jlw, _requirement_of("ipywidgets", "jupyterlab_widgets"), manager, source)
    if problems:
        raise LabCheckError("widget manager and ipywidgets disagree: " + "; ".join(problems))
    return {"ipywidgets": ipyw, "jupyterlab_widgets": jlw, "manager": manager}


# --- 2. the server ----------------------------------------------------------------------------

def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def write_notebook(directory: Path) -> Path:
    import nbformat

    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb.cells = [nbformat.v4.new_code_cell(CELL)]
    path = directory / "live_slider.ipynb"
    nbformat.write(nb, path)
    return path


def start_lab(jupyter: Path, directory: Path, port: int, token: str, log) -> subprocess.Popen:
    """JupyterLab serving ``directory`` (its settings, workspaces and runtime files live in ``directory.parent``)."""
    state = directory.parent
    settings = state / ".lab-settings" / "@jupyterlab" / "apputils-extension"
    settings.mkdir(parents=True, exist_ok=True)
    # no "Would you like to receive Jupyter news?" toast, and no news fetched from the internet
    (settings / "notification.jupyterlab-settings").write_text('{"fetchNews": "false"}')
    env = dict(os.environ, TUTORLIB_PROGRESS="0", TUTORLIB_THREADS="1", TUTORLIB_MODE="quick",
               JUPYTER_CONFIG_DIR=str(state / ".jupyter-config"), JUPYTER_RUNTIME_DIR=str(state / ".runtime"),
               JUPYTERLAB_SETTINGS_DIR=str(state / ".lab-settings"),
               JUPYTERLAB_WORKSPACES_DIR=str(state / ".lab-workspaces"))
    cmd = [str(jupyter), "lab", "--no-browser", "--ip=127.0.0.1", f"--port={port}", "--port-retries=0",
           f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={directory}",
           "--LabApp.expose_app_in_browser=True", "--LabApp.news_url=None",
           "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
           "--ServerApp.shutdown_no_activity_timeout=600", "--MappingKernelManager.cull_idle_timeout=0",
           # the kernel on Unix sockets under the runtime folder: no TCP port to race nbval's kernels for
           "--KernelManager.transport=ipc"]
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        cmd.append("--allow-root")
    return subprocess.Popen(cmd, cwd=directory, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)


def wait_for_server(base: str, token: str, proc: subprocess.Popen, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise LabCheckError(f"JupyterLab exited with status {proc.returncode} before it answered")
        try:
            with urllib.request.urlopen(f"{base}api/status?token={token}", timeout=5) as r:
                if r.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.5)
    raise LabCheckError(f"JupyterLab did not answer on {base} within {timeout:.0f} s")


def stop_lab(proc: subprocess.Popen, base: str, token: str) -> None:
    if proc.poll() is None:
        try:
            req = urllib.request.Request(f"{base}api/shutdown?token={token}", method="POST", data=b"")
            urllib.request.urlopen(req, timeout=10).close()
            proc.wait(timeout=20)
        except (OSError, subprocess.TimeoutExpired):
            pass
    if proc.poll() is None:
        try:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(timeout=10)
        except (ProcessLookupError, subprocess.TimeoutExpired):
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)


# --- 3. the browser ---------------------------------------------------------------------------

SLIDER = ".jp-OutputArea .widget-slider"
HANDLE = SLIDER + " .noUi-handle"
READOUT = SLIDER + " .widget-readout"
FIGURE = ".jp-OutputArea .widget-output img, .jp-OutputArea .jupyter-widgets-output-area img"
WIDGET_ERROR = "Error displaying widget"
FRAMES_INPUT = ".jp-OutputArea figure.tutorlib-slider input[type=range]"
SHOWN_FRAME = ("() => { const f = Array.from(document.querySelectorAll('.jp-OutputArea img.tutorlib-frame'))"
               ".filter(i => !i.hidden); return f.length === 1 ? f[0].getAttribute('data-value') : null; }")


def drag_slider(base: str, notebook: str, token: str, chromium: str, timeout: float,
                screenshot: Path | None = None) -> dict:
    """Open ``notebook`` in JupyterLab, run it, drag the live slider; return what was seen."""
    from playwright.sync_api import TimeoutError as PwTimeout
    from playwright.sync_api import sync_playwright

    errors, blocked = [], []
    ms = int(timeout * 1000)
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 1000})
            page.set_default_timeout(ms)

            page.route("**/*", _local_only(blocked))
            page.on("pageerror", lambda exc: errors.append(f"uncaught: {exc}"))
            page.on("console", lambda msg: errors.append(f"console: {msg.text}") if msg.type == "error" else None)

            step = "opening the notebook"
            try:
                page.goto(f"{base}lab/tree/{notebook}?token={token}", wait_until="load")
                page.wait_for_function("() => window.jupyterapp && window.jupyterapp.shell"
                                       " && document.querySelector('.jp-Notebook')")
                step = "waiting for the kernel"
                page.wait_for_function("() => { const w = window.jupyterapp.shell.currentWidget;"
                                       " return w && w.sessionContext && w.sessionContext.session"
                                       " && w.sessionContext.session.kernel"
                                       " && w.sessionContext.session.kernel.connectionStatus === 'connected'; }")
                step = "running the notebook"
                page.evaluate("() => window.jupyterapp.commands.execute('notebook:run-all-cells')")
                step = "waiting for the live slider"
                page.wait_for_function(
                    f"() => document.querySelector({json.dumps(HANDLE)})"
                    f" || document.body.innerText.includes({json.dumps(WIDGET_ERROR)})")
                if WIDGET_ERROR in page.inner_text("body"):
                    raise LabCheckError(f"JupyterLab shows '{WIDGET_ERROR}': the widget manager and ipywidgets "
                                        f"disagree ({'; '.join(errors[:3]) or 'no console message'})")
                step = "moving the kernel-free slider with the keyboard"
                # the book's frame slider in a trusted notebook output: its script ran, the keys reach it
                page.wait_for_function(f"() => {{ const i = document.querySelector({json.dumps(FRAMES_INPUT)});"
                                       f" return i && !i.closest('[hidden]'); }}")
                frames_before = page.evaluate(SHOWN_FRAME)
                page.locator(FRAMES_INPUT).first.scroll_into_view_if_needed()
                page.locator(FRAMES_INPUT).first.focus()
                page.keyboard.press("End")
                page.wait_for_function(f"(old) => ({SHOWN_FRAME})() !== old", arg=frames_before)
                frames_after = page.evaluate(SHOWN_FRAME)
                step = "waiting for the slider's figure"
                page.wait_for_function(f"() => document.querySelector({json.dumps(FIGURE)})")
                before_src = page.eval_on_selector(FIGURE, "img => img.src")
                before_value = page.inner_text(READOUT).strip()
                step = "dragging the slider"
                # the notebook scrolls inside its panel: bring the live slider into the viewport first
                page.locator(SLIDER).first.scroll_into_view_if_needed()
                box = page.locator(HANDLE).first.bounding_box()
                track = page.locator(SLIDER + " .noUi-target").first.bounding_box()
                if box is None or track is None:
                    raise LabCheckError("the slider's handle or track has no size on the page")
                y = box["y"] + box["height"] / 2
                page.mouse.move(box["x"] + box["width"] / 2, y)
                page.mouse.down()
                page.mouse.move(track["x"] + track["width"] - 2, y, steps=12)
                page.mouse.up()
                step = "waiting for the redrawn figure"
                page.wait_for_function(
                    f"(old) => {{ const i = document.querySelector({json.dumps(FIGURE)});"
                    f" return i && i.complete && i.src !== old; }}", arg=before_src)
                after_value = page.inner_text(READOUT).strip()
                page.locator(FIGURE).first.scroll_into_view_if_needed()
            except PwTimeout:
                raise LabCheckError(f"timed out after {timeout:.0f} s while {step}"
                                    + (f"; console: {'; '.join(errors[:3])}" if errors else "")) from None
            finally:
                if screenshot is not None:
                    screenshot.parent.mkdir(parents=True, exist_ok=True)
                    try:
                        page.screenshot(path=str(screenshot), full_page=True)
                    except Exception:  # noqa: BLE001 - a screenshot is for humans; never the failure
                        pass
        finally:
            browser.close()
    real_errors = [e for e in errors if not ("Failed to load resource" in e and blocked)]
    if real_errors:
        raise LabCheckError("console errors in JupyterLab: " + "; ".join(e[:300] for e in real_errors))
    if before_value == after_value:
        raise LabCheckError(f"the slider's readout stayed at {before_value!r} after the drag")
    return {"before": before_value, "after": after_value, "blocked": blocked,
            "frames": (frames_before, frames_after)}


def run(chromium: str, timeout: float, screenshot: Path | None = None, jupyter: Path | None = None) -> str:
    jupyter = jupyter or Path(sys.executable).with_name("jupyter")
    if not jupyter.exists():
        raise LabCheckError(f"{jupyter} not found: run `make setup`")
    if not Path(chromium).exists():
        raise LabCheckError(f"Chromium not found at {chromium}: set --chromium (or CHROMIUM for make)")
    versions = check_versions(jupyter)
    token = secrets.token_hex(16)
    tmp = Path(tempfile.mkdtemp(prefix="tutorlib-lab-check-"))
    root = tmp / "notebooks"
    root.mkdir()
    port = free_port()
    base = f"http://127.0.0.1:{port}/"
    log_path = tmp / "jupyterlab.log"
    with open(log_path, "w") as log:
        write_notebook(root)
        proc = start_lab(jupyter, root, port, token, log)
        try:
            wait_for_server(base, token, proc, timeout)
            seen = drag_slider(base, "live_slider.ipynb", token, chromium, timeout, screenshot)
        except LabCheckError as err:
            log.flush()
            tail = log_path.read_text(errors="replace")[-1500:]
            raise LabCheckError(f"{err}\n--- JupyterLab log (end) ---\n{tail}") from None
        finally:
            stop_lab(proc, base, token)
    shutil.rmtree(tmp, ignore_errors=True)
    return (f"lab check: JupyterLab ran the live slider (ipywidgets {versions['ipywidgets']}, jupyterlab_widgets "
            f"{versions['jupyterlab_widgets']}, widget manager {versions['manager']}); a mouse drag moved it from "
            f"{seen['before']} to {seen['after']} and redrew the figure; no console errors; "
            f"{len(seen['blocked'])} request(s) off the machine blocked; the kernel-free slider's End key showed frame "
            f"{seen['frames'][1]} (was {seen['frames'][0]})")


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--chromium", default=os.environ.get("CHROMIUM", "/usr/bin/chromium"))
    ap.add_argument("--timeout", type=float, default=90.0, help="seconds for each wait")
    ap.add_argument("--screenshot", type=Path, default=None)
    args = ap.parse_args(argv)
    try:
        print(run(args.chromium, args.timeout, args.screenshot))
    except LabCheckError as err:
        print(f"lab check FAILED: {err}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
