"""Emit each inline ``<script>`` of a page once (a work-around for a Sphinx 7.4 bug).

The bug: an extension that calls ``app.add_js_file(None, body=...)`` after the HTML builder was
created (sphinx-thebe does it in an ``env-before-read-docs`` handler, sphinx-togglebutton in
``builder-inited``) registers the script twice. Sphinx adds it to the builder's list at once as
``_JavaScript(None, body=...)`` and, in ``prepare_writing``, adds every registered script again as
``_JavaScript('', body=...)``; the two compare unequal (``None != ''``), so both end up in
``script_files`` and every page carries the inline script twice. For sphinx-thebe that is
``const THEBE_JS_URL = ...`` declared twice: "SyntaxError: Identifier 'THEBE_JS_URL' has already
been declared" on every page.

The fix: in ``html-page-context`` (after the other extensions, which may still add scripts there),
replace ``script_files`` by a copy without repeats, comparing scripts by what they render to:
file name (``None`` and ``''`` both meaning "inline"), priority and attributes (the body among them).
Deduplicating with ``set``/``dict.fromkeys`` does not work: it uses the same ``__eq__`` that lets the
two through. Only inline scripts can repeat this way; files are never touched twice.
"""

from __future__ import annotations

from typing import Any

PRIORITY = 900  # after the handlers of the theme and of other extensions (default 500)


def _key(script: Any) -> tuple:
    """What a script renders to; two scripts with the same key give the same ``<script>`` tag."""
    if isinstance(script, str):  # old-style entries are plain file names
        return (script, None, ())
    attributes = tuple(sorted((k, str(v)) for k, v in script.attributes.items()))
    return (script.filename or "", script.priority, attributes)


def unique_scripts(scripts) -> list:
    """``scripts`` in their order, each rendered ``<script>`` once."""
    seen: set[tuple] = set()
    kept = []
    for script in scripts:
        key = _key(script)
        if key not in seen:
            seen.add(key)
            kept.append(script)
    return kept


def _on_page_context(app, pagename, templatename, context, doctree) -> None:
    if "script_files" in context:
        context["script_files"] = unique_scripts(context["script_files"])


def setup(app):
    app.connect("html-page-context", _on_page_context, priority=PRIORITY)
    return {"version": "1.0", "parallel_read_safe": True, "parallel_write_safe": True}
