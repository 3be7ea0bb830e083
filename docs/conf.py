"""Sphinx configuration of the spherenet documentation.

Build (from the repository root, with the ``docs`` extra installed)::

    python -m sphinx -W --keep-going -b html docs docs/_build/html

* API reference: one page per module of ``API_MODULES`` below, written at
  build time from the module's ``__all__`` (every public name gets an
  autosummary page, rendered by numpydoc from its docstring). Adding a module
  to the reference is adding one line to ``API_MODULES``.
* Gallery: sphinx-gallery runs every ``examples/plot_*.py`` and makes a page
  of it, with its figures.
* Math: MathJax 3 is served from ``_static/mathjax``, copied from the
  ``sphinx-mathjax-offline`` wheel (a ``docs`` extra), so the site renders
  formulas offline; no page loads a script from a CDN.
"""

import importlib
import importlib.util
import inspect
import os
import pathlib
import sys
import warnings

HERE = pathlib.Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(HERE / "_ext"))

import spherenet  # noqa: E402

# -- project -------------------------------------------------------------------------

project = "spherenet"
author = "the spherenet developers"
copyright = "the spherenet developers"
version = release = spherenet.__version__

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.mathjax",
    "sphinx.ext.viewcode",
    "numpydoc",
    "sphinx_gallery.gen_gallery",
]

templates_path = ["_templates"]
exclude_patterns = ["_build", "**/GALLERY_HEADER.rst", "**.ipynb_checkpoints"]
default_role = "py:obj"
pygments_style = "sphinx"
pygments_dark_style = "monokai"

# -- HTML: furo ----------------------------------------------------------------------

html_theme = "furo"
html_title = f"spherenet {release}"
html_static_path = ["_static"]
html_css_files = ["spherenet.css"]
html_show_sourcelink = False
html_theme_options = {
    "source_repository": None,
    "navigation_with_keys": True,
}

# -- math: MathJax from a local copy -------------------------------------------------


def _local_mathjax():
    """The folder holding ``mathjax/tex-chtml.js`` in the sphinx-mathjax-offline wheel."""
    spec = importlib.util.find_spec("sphinx-mathjax-offline")
    if spec is None or spec.origin is None:
        raise RuntimeError(
            "the docs need MathJax served locally, from the package sphinx-mathjax-offline: "
            'pip install -e ".[docs]"'
        )
    static = pathlib.Path(spec.origin).parent / "static"
    if not (static / "mathjax" / "tex-chtml.js").is_file():
        raise RuntimeError(f"no mathjax/tex-chtml.js under {static}")
    return str(static)


# The wheel's static/ holds mathjax/; as an html_static_path entry it is copied
# to _static/mathjax/ with the theme's files. Only the extension's files are
# used, not its setup(), which would copy them after the build.
html_static_path.append(_local_mathjax())
mathjax_path = "mathjax/tex-chtml.js"
# Sphinx's $...$-free defaults: :math: roles and .. math:: directives only.
mathjax3_config = {"tex": {"inlineMath": [["\\(", "\\)"]], "displayMath": [["\\[", "\\]"]]}}

# -- autodoc, autosummary, numpydoc ----------------------------------------------------

autosummary_generate = True
autosummary_imported_members = True
autodoc_default_options = {"member-order": "groupwise"}
autodoc_typehints = "none"
autodoc_inherit_docstrings = True
numpydoc_show_class_members = False
numpydoc_class_members_toctree = False
numpydoc_xref_param_type = False
numpydoc_validation_checks = set()
# Identical reference labels ([1]) in several docstrings of one page stay distinct.
numpydoc_citation_re = "[a-zA-Z0-9_.-]+"
# numpydoc-style References sections list works that the text need not cite.
suppress_warnings = ["ref.citation"]

#: Modules of the API reference, in the order of the reference's table of contents.
#: Names in a module's ``__all__`` that are modules get a page of their own.
#: A module that does not exist (yet) is left out; one that exists must import.
API_MODULES = [
    "spherenet",
    "spherenet.manifolds",
    "spherenet.optim",
    "spherenet.strategies",
    "spherenet.problems",
    "spherenet.diagnostics",
    "spherenet.theory",
    "spherenet.interop",
    "spherenet.nn",
    "spherenet.experiments",
]

_KINDS = ("Classes", "Exceptions and warnings", "Functions", "Constants")


def _kind(obj):
    if inspect.ismodule(obj):
        return "Modules"
    if inspect.isclass(obj):
        return "Exceptions and warnings" if issubclass(obj, BaseException) else "Classes"
    if callable(obj):
        return "Functions"
    return "Constants"


#: id(object) -> the module whose page documents it: the first module of API_MODULES
#: (in order, each followed by its submodules) that exports it. Other modules that
#: re-export it link to that page, so every object has exactly one page.
_OWNER = {}
#: The autosummary pages the reference needs (file names under api/generated/).
_STUBS = set()


def _module_page(name, parent=None):
    """The reST of the reference page of module ``name``, and its submodules."""
    module = importlib.import_module(name)
    public = [n for n in getattr(module, "__all__", []) if not n.startswith("__")]
    groups = {}
    for item in public:
        obj = getattr(module, item)
        kind = _kind(obj)
        owner = name
        if kind != "Constants":
            owner = _OWNER.setdefault(id(obj), name)
        groups.setdefault(kind, []).append((item, owner))
    lines = [name, "=" * len(name), "", f".. automodule:: {name}", "   :no-members:", "",
             f".. currentmodule:: {name}", ""]
    if parent is not None:
        lines[3:3] = [f"Part of :doc:`{parent}`.", ""]
    for title in _KINDS:
        if title not in groups:
            continue
        lines += [title, "-" * len(title), ""]
        owned = [item for item, owner in groups[title] if owner == name]
        linked = [f"~{owner}.{item}" for item, owner in groups[title] if owner != name]
        _STUBS.update(f"{name}.{item}.rst" for item in owned)
        if owned:
            # No :template: option: autosummary picks _templates/autosummary/<objtype>.rst.
            lines += [".. autosummary::", "   :toctree: generated/", "   :nosignatures:", ""]
            lines += [f"   {item}" for item in owned] + [""]
        if linked:
            lines += [".. autosummary::", "   :nosignatures:", ""]
            lines += [f"   {item}" for item in linked] + [""]
    submodules = [f"{name}.{item}" for item, _ in groups.get("Modules", [])]
    if submodules:
        lines += ["Submodules", "----------", "", ".. toctree::", "   :maxdepth: 1", ""]
        lines += [f"   {sub}" for sub in submodules] + [""]
    return "\n".join(lines), submodules


def write_api_pages(outdir=HERE / "api"):
    """Write ``docs/api/<module>.rst`` for every module of API_MODULES (and submodules)."""
    outdir.mkdir(exist_ok=True)
    wanted = {}
    for name in API_MODULES:
        try:
            found = importlib.util.find_spec(name) is not None
        except ModuleNotFoundError:
            found = False
        if not found:
            continue
        todo = [(name, None)]
        while todo:
            mod, parent = todo.pop(0)
            text, subs = _module_page(mod, parent)
            wanted[f"{mod}.rst"] = text
            todo += [(sub, mod) for sub in subs]
    # Pages of names that left an __all__ would otherwise linger (and warn).
    for path in [*outdir.glob("*.rst"), *outdir.glob("generated/*.rst")]:
        if path.name not in (wanted if path.parent == outdir else _STUBS):
            path.unlink()
    for filename, text in wanted.items():
        path = outdir / filename
        if not path.exists() or path.read_text() != text:
            path.write_text(text)
    top = [n for n in API_MODULES if f"{n}.rst" in wanted]
    toc = ["", ".. toctree::", "   :maxdepth: 1", ""] + [f"   api/{n}" for n in top] + [""]
    path = HERE / "api_toc.inc"
    if not path.exists() or path.read_text() != "\n".join(toc):
        path.write_text("\n".join(toc))


write_api_pages()

# -- sphinx-gallery ------------------------------------------------------------------

sphinx_gallery_conf = {
    "examples_dirs": str(ROOT / "examples"),
    "gallery_dirs": "auto_examples",
    "filename_pattern": r"/plot_",
    "within_subsection_order": "gallery_order.ExampleOrder",
    "download_all_examples": False,
    "remove_config_comments": True,
    "abort_on_example_error": True,
    "matplotlib_animations": False,
    "show_signature": False,
    "min_reported_time": 0,
    # No execution-time pages: they load jQuery and DataTables from CDNs.
    "write_computation_times": False,
    "image_scrapers": ("matplotlib",),
    "reset_modules": ("matplotlib",),
}

# Examples run in this process; keep their output free of noise that is not theirs.
os.environ.setdefault("MPLBACKEND", "agg")
warnings.filterwarnings("ignore", message="Matplotlib is currently using agg")


# -- docstrings inherited from outside spherenet -----------------------------------------


def _defining_class(qualified):
    """The class named by ``module.Class`` (None if it cannot be found)."""
    module_name, _, rest = qualified.rpartition(".")
    while module_name:
        try:
            obj = importlib.import_module(module_name)
        except ImportError:
            module_name, _, head = module_name.rpartition(".")
            rest = f"{head}.{rest}"
            continue
        for part in rest.split("."):
            obj = getattr(obj, part, None)
        return obj if inspect.isclass(obj) else None
    return None


def _foreign_docstring(app, what, name, obj, options, lines):
    """Replace a method's docstring inherited from the standard library (or any
    non-spherenet base) by a pointer to it: those are not numpydoc and need not
    render; spherenet's own inherited docstrings (Manifold's contract) stay."""
    if what not in ("method", "attribute", "property") or not lines:
        return
    cls = _defining_class(name.rpartition(".")[0])
    attr = name.rpartition(".")[2]
    if cls is None:
        return
    for base in cls.__mro__:
        member = base.__dict__.get(attr)
        if member is not None and getattr(member, "__doc__", None):
            if not base.__module__.startswith("spherenet"):
                public = base.__module__.replace("._base", "")
                lines[:] = [f"Inherited from ``{public}.{base.__qualname__}.{attr}``."]
            return


def _constant_docstring(app, what, name, obj, options, lines):
    """A re-exported constant: the ``#:`` comment where it is defined, not its type's
    docstring ("Built-in immutable sequence.")."""
    if what != "data" or getattr(type(obj), "__doc__", None) != obj.__doc__:
        return
    from sphinx.pycode import ModuleAnalyzer

    package, _, attr = name.rpartition(".")
    lines[:] = []
    for module_name, module in sorted(sys.modules.items()):
        if not module_name.startswith(package) or getattr(module, attr, None) is not obj:
            continue
        try:
            docs = ModuleAnalyzer.for_module(module_name).find_attr_docs()
        except Exception:  # noqa: BLE001 - no source: leave the summary empty
            continue
        if ("", attr) in docs:
            lines[:] = list(docs["", attr])
            return


def setup(app):
    app.connect("autodoc-process-docstring", _foreign_docstring, priority=400)
    app.connect("autodoc-process-docstring", _constant_docstring, priority=400)
