"""Sphinx extension: register an inline script once, not twice.

sphinx-thebe adds its inline configuration script (``const THEBE_JS_URL = ...``) with
``app.add_js_file(None, body=...)`` while documents are being read. Sphinx 7.4 stores it once
under the file name ``None`` and adds it again under ``''`` when it prepares writing, so every
page declared the constants twice and the browser stopped with "Identifier 'THEBE_JS_URL' has
already been declared". We normalise the name right after sphinx-thebe registered the script,
so the second registration is recognised as the same asset.
"""
from sphinx.builders.html._assets import _JavaScript


def _normalise_inline_scripts(app, env, docnames):
    files = getattr(app.builder, "_js_files", None)
    if files is None:
        return
    fixed = []
    for asset in files:
        if isinstance(asset, _JavaScript) and asset.filename is None:
            asset = _JavaScript("", priority=asset.priority, **asset.attributes)
        if asset not in fixed:
            fixed.append(asset)
    files[:] = fixed


def setup(app):
    # after sphinx-thebe's own env-before-read-docs handler (priority 500)
    app.connect("env-before-read-docs", _normalise_inline_scripts, priority=900)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
