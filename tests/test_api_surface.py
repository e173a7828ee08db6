"""The public API documents itself: ``help()`` on any public name says what it does and what each
parameter means.

Every name in ``afpacket.__all__`` and the public names of the modules a Python user imports from
(``afpacket.tofile``, ``afpacket.savefile``, ...) must have a docstring, and so must their public
methods and properties (inherited ones included, when afpacket defines them). Every parameter of a
function's signature must be named in its docstring; a class's constructor parameters in the class's
docstring or its ``__init__``'s. Pure introspection: no sockets, so it runs once, not per ring core.
"""

from __future__ import annotations

import importlib
import inspect
import pydoc
import re
import types
from collections.abc import Callable, Iterator
from typing import Any

import pytest

import afpacket
from afpacket.pacing import Pacer

#: Modules whose public names are API even when ``afpacket`` does not re-export them (the CLI's are not).
MODULES = [
    "afpacket.aio",
    "afpacket.bridges",
    "afpacket.craft",
    "afpacket.ebpf",
    "afpacket.errors",
    "afpacket.fanout",
    "afpacket.filter",
    "afpacket.flows.communityid",
    "afpacket.flows.export",
    "afpacket.group",
    "afpacket.geometry",
    "afpacket.interfaces",
    "afpacket.metrics",
    "afpacket.pacing",
    "afpacket.ring",
    "afpacket.rx.capture",
    "afpacket.rx.columns",
    "afpacket.rx.packet",
    "afpacket.savefile",
    "afpacket.timestamps",
    "afpacket.savefile.linktype",
    "afpacket.savefile.pcap",
    "afpacket.savefile.pcapng",
    "afpacket.savefile.record",
    "afpacket.sock",
    "afpacket.talkers",
    "afpacket.testnet",
    "afpacket.tofile",
    "afpacket.tx",
]
#: Entry points whose docstrings must carry a short example (``>>>`` or an indented code line).
WITH_EXAMPLES = ["Capture", "Transmitter", "dump", "open_reader", "CaptureFile", "Packet", "Record"]


@pytest.fixture(autouse=True)
def core() -> str:
    """Overrides conftest's per-core fixture: introspection does not touch a ring."""
    return "none"


def _own_doc(obj: Any) -> str:
    """The docstring written for ``obj`` itself, not one dataclasses generate or a base class lends."""
    doc = obj.__dict__.get("__doc__") if isinstance(obj, type) else getattr(obj, "__doc__", None)
    if not doc:
        return ""
    if isinstance(obj, type) and doc.startswith(obj.__name__ + "("):  # dataclass's generated signature
        return ""
    return inspect.cleandoc(doc)


def _public_names(module: types.ModuleType) -> list[str]:
    names = getattr(module, "__all__", None)
    if names is not None:
        return list(names)
    return [
        n for n, v in vars(module).items()
        if not n.startswith("_") and (inspect.isclass(v) or inspect.isfunction(v))
        and getattr(v, "__module__", None) == module.__name__
    ]


def _api() -> Iterator[tuple[str, Any]]:
    """(qualified name, object) for every public class and function, once each."""
    seen: set[int] = set()
    modules = [afpacket, *(importlib.import_module(m) for m in MODULES)]
    for module in modules:
        for name in _public_names(module):
            obj = getattr(module, name)
            if isinstance(obj, types.ModuleType):
                modules.append(obj)  # a subpackage in __all__ (e.g. afpacket.decode)
                continue
            if not (inspect.isclass(obj) or inspect.isfunction(obj) or inspect.isbuiltin(obj)):
                continue  # constants
            if id(obj) in seen:
                continue
            seen.add(id(obj))
            yield f"{module.__name__}.{name}", obj


def _members(cls: type) -> Iterator[tuple[str, Any]]:
    """Public methods and properties of ``cls``, including those inherited from afpacket's classes."""
    seen: set[str] = set()
    for klass in cls.__mro__:
        if not klass.__module__.startswith("afpacket"):
            continue
        for name, attr in vars(klass).items():
            if name.startswith("_") or name in seen:
                continue
            seen.add(name)
            if isinstance(attr, (staticmethod, classmethod)):
                attr = attr.__func__
            if inspect.isfunction(attr) or isinstance(attr, property):
                yield name, attr


def _params(func: Callable[..., Any]) -> list[str]:
    try:
        sig = inspect.signature(func)
    except (TypeError, ValueError):
        return []
    return [p for p in sig.parameters if p not in ("self", "cls") and not p.startswith("_")]


def _mentions(doc: str, name: str) -> bool:
    return re.search(rf"(?<![\w.]){re.escape(name)}\b", doc) is not None


def _constructor(cls: type) -> Callable[..., Any] | None:
    """The ``__init__`` afpacket wrote (or dataclasses generated) for ``cls``, if any."""
    if getattr(cls, "_is_protocol", False):
        return None  # a typing.Protocol is never instantiated
    for klass in cls.__mro__:
        if "__init__" in vars(klass):
            return vars(klass)["__init__"] if klass.__module__.startswith("afpacket") else None
    return None


def _problems() -> list[str]:
    out: list[str] = []
    for qual, obj in _api():
        doc = _own_doc(obj)
        if not doc:
            out.append(f"{qual}: no docstring")
            continue
        if inspect.isclass(obj):
            init = _constructor(obj)
            if init is not None:
                init_doc = doc + "\n" + (inspect.getdoc(init) or "")
                for p in _params(init):
                    if not _mentions(init_doc, p):
                        out.append(f"{qual}(): parameter {p!r} is not described")
            for name, member in _members(obj):
                mdoc = member.__doc__ if isinstance(member, property) else _own_doc(member)
                if not mdoc:
                    out.append(f"{qual}.{name}: no docstring")
                    continue
                if inspect.isfunction(member):
                    for p in _params(member):
                        if not _mentions(mdoc, p):
                            out.append(f"{qual}.{name}(): parameter {p!r} is not described")
        else:
            for p in _params(obj):
                if not _mentions(doc, p):
                    out.append(f"{qual}(): parameter {p!r} is not described")
    return out


def test_every_public_name_is_documented_with_its_parameters() -> None:
    problems = _problems()
    assert not problems, f"{len(problems)} gaps in the API documentation:\n" + "\n".join(problems)


def test_the_api_walk_sees_the_whole_surface() -> None:
    # The check above is only as good as the walk: it must reach the classes, their methods and properties.
    quals = {q for q, _ in _api()}
    assert {"afpacket.Capture", "afpacket.Transmitter", "afpacket.dump", "afpacket.open_reader",
            "afpacket.tofile.open_for", "afpacket.Record"} <= quals
    # Helper modules the tests, benchmarks and ``afpacket gen`` build on are API too.
    assert {"afpacket.craft.udp_frame", "afpacket.craft.ethernet_from", "afpacket.craft.FlowSpec",
            "afpacket.pacing.Pacer", "afpacket.pacing.paced_send", "afpacket.testnet.VethPair",
            "afpacket.testnet.send_frames_in", "afpacket.ring.use", "afpacket.ring.available",
            "afpacket.ring.current"} <= quals
    assert {"begin", "deadline", "restart", "wait_until", "topspeed"} <= dict(_members(Pacer)).keys()
    members = dict(_members(afpacket.Capture))
    assert {"packets", "frames", "columns", "batches", "next_packet", "stats", "blocks_seen"} <= members.keys()
    assert "flush" in dict(_members(afpacket.PcapWriter))  # inherited from RecordWriter
    assert len(quals) > 60


@pytest.mark.parametrize("name", WITH_EXAMPLES)
def test_entry_points_carry_an_example(name: str) -> None:
    doc = _own_doc(getattr(afpacket, name))
    example = ">>>" in doc or ("Example" in doc and re.search(r"^ {4,}\S", doc, re.M))
    assert example, f"afpacket.{name}: no example in the docstring"


@pytest.mark.parametrize("name", afpacket.__all__)
def test_help_renders(name: str) -> None:
    obj = getattr(afpacket, name)
    if inspect.isclass(obj) or inspect.isfunction(obj):
        text = pydoc.render_doc(obj, renderer=pydoc.plaintext)
        assert name in text and len(text) > 200


def test_capture_documents_every_readme_parameter() -> None:
    # README's "Python" section lists Capture's options; help(afpacket.Capture) must explain each one.
    doc = _own_doc(afpacket.Capture) + (inspect.getdoc(afpacket.Capture.__init__) or "")
    for p in inspect.signature(afpacket.Capture).parameters:
        assert re.search(rf"``{p}``|\b{p}\b", doc), p
    assert "poll_timeout" in doc and "duration" in doc
