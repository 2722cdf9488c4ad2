"""The one place that reads input files: a recipe, a config, an actor image, a motion template.

Every read goes through the same gate: a regular file (a FIFO or a device would block forever or
never end), within a size limit, UTF-8 text, parsed with a bounded nesting depth and no duplicate
keys. JSON is parsed by a JSON parser, YAML by a YAML parser. An image's header is checked against
a pixel limit before a single pixel is decoded. Each problem is a `RecipeError`/`ConfigError` that
names the file or field and what is allowed.
"""

from __future__ import annotations

import codecs
import datetime as dt
import io
import json
import os
import re
import stat
from pathlib import Path
from typing import Any, Callable, Literal, NoReturn, Optional

import yaml

from .errors import ConfigError, RecipeError

MAX_TEXT_BYTES = 1 << 20  # 1 MiB: a recipe is ~1 KB and a config ~3 KB; anything near this is not one
MAX_IMAGE_BYTES = 50_000_000  # 50 MB: a 40 MP PNG of a photograph is about 40-60 MB
MAX_IMAGE_PIXELS = 40_000_000  # 40 MP: above any camera portrait (a 24 MP DSLR frame fits); a 30000² bomb does not
MAX_DEPTH = 64  # nesting levels; a recipe uses 3 and a config 4
# YAML aliases may repeat a node; expanded, a document may hold at most this many nodes. A channel
# of 1000 slots, each an alias of one ~20-node recipe, is 20 000; a "billion laughs" is 10^9.
MAX_EXPANDED_NODES = 100_000

Kind = Literal["recipe", "config"]
Format = Literal["json", "yaml"]


class RecipeFileError(RecipeError):
    """The recipe file itself (or recipe text) cannot be read or parsed: it names the file, not a field.

    `field` is the key path a problem sits at when there is one (a duplicate key), else 'recipe'."""

    def __init__(self, source: str | os.PathLike | None, problem: str, field: str = "recipe"):
        self.source = None if source is None else str(source)
        self.field = field
        self.problem = problem
        where = f"recipe file '{self.source}'" if self.source else "recipe text"
        Exception.__init__(self, f"{where}: {problem}")


class ConfigFileError(ConfigError):
    """The config file itself (or a profile's text) cannot be read or parsed."""

    def __init__(self, source: str | os.PathLike | None, problem: str, field: Optional[str] = None):
        self.source = None if source is None else str(source)
        self.field = field
        self.problem = problem
        where = f"config file '{self.source}'" if self.source else "config text"
        super().__init__(f"{where}: {problem}")


_FILE_ERRORS: dict[str, type] = {"recipe": RecipeFileError, "config": ConfigFileError}


def _failer(kind: Kind, source: str | os.PathLike | None) -> Callable[..., NoReturn]:
    if kind not in _FILE_ERRORS:  # refused at once, not only when the input is bad (a 500 on bad input)
        raise ValueError(f"kind must be one of {', '.join(_FILE_ERRORS)}, got {kind!r}")

    def fail(problem: str, field: Optional[str] = None) -> NoReturn:
        cls = _FILE_ERRORS[kind]
        raise (cls(source, problem) if field is None else cls(source, problem, field))

    return fail


# ---- bytes --------------------------------------------------------------------------------------
def _what(mode: int) -> str:
    for test, name in ((stat.S_ISDIR, "a directory"), (stat.S_ISFIFO, "a FIFO (named pipe)"),
                       (stat.S_ISSOCK, "a socket"), (stat.S_ISCHR, "a character device"),
                       (stat.S_ISBLK, "a block device")):
        if test(mode):
            return name
    return "not a regular file"


def _size(n: int) -> str:
    if n and n % (1 << 20) == 0:
        return f"{n >> 20} MiB"
    return f"{n / 1e6:.1f} MB" if n >= 1e6 else f"{n} bytes"


def _stat_regular(path: Path, fail: Callable[[str], NoReturn]) -> os.stat_result:
    """The path's stat, refusing anything but a regular file (a FIFO would block its reader)."""
    try:
        st = os.stat(path)  # follows symlinks: a link to a regular file is fine
    except FileNotFoundError:
        fail("cannot be read: no such file")
    except OSError as exc:
        fail(f"cannot be read: {exc.strerror or exc}")
    except ValueError:  # os.stat refuses a NUL in a path (found by tests/test_fuzz_parsers.py)
        fail("cannot be read: a path cannot contain a NUL character")
    if not stat.S_ISREG(st.st_mode):
        fail(f"is {_what(st.st_mode)}, not a regular file")
    return st


def _read_regular(path: Path, limit: Optional[int], fail: Callable[[str], NoReturn]) -> bytes:
    """The bytes of a regular file of at most `limit` bytes; anything else is refused before it is read."""
    _stat_regular(path, fail)
    try:
        # O_NONBLOCK: should the path be swapped for a FIFO after the stat, open() still returns
        # at once and fstat() below refuses it, instead of blocking for a writer that never comes.
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    except OSError as exc:
        fail(f"cannot be read: {exc.strerror or exc}")
    with os.fdopen(fd, "rb") as f:
        st = os.fstat(f.fileno())
        if not stat.S_ISREG(st.st_mode):
            fail(f"is {_what(st.st_mode)}, not a regular file")
        if limit is not None and st.st_size > limit:
            fail(f"is {_size(st.st_size)}; the limit is {_size(limit)}")
        try:
            data = f.read() if limit is None else f.read(limit + 1)
        except OSError as exc:
            fail(f"cannot be read: {exc.strerror or exc}")
    if limit is not None and len(data) > limit:  # it grew while we read it
        fail(f"is over the limit of {_size(limit)}")
    return data


def check_regular_file(path: str | os.PathLike, field: str, ref: Optional[str] = None) -> Path:
    """Refuse a path in a recipe field that is not a readable regular file (a FIFO would hang the slot)."""
    path = Path(path)
    ref = str(path) if ref is None else ref

    def fail(problem: str) -> NoReturn:
        raise RecipeError(field, f"'{ref}' {problem}")

    _stat_regular(path, fail)
    if not os.access(path, os.R_OK):
        fail("cannot be read: permission denied")
    return path


# ---- text ---------------------------------------------------------------------------------------
def decode_text(data: bytes, fail: Callable[[str], NoReturn]) -> str:
    """UTF-8 text, with or without a byte-order mark; UTF-16/32 and binary are refused by name."""
    if data.startswith((codecs.BOM_UTF32_LE, codecs.BOM_UTF32_BE)):
        fail("is UTF-32 text (it starts with a UTF-32 byte-order mark); it must be UTF-8")
    if data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        fail("is UTF-16 text (it starts with a UTF-16 byte-order mark); it must be UTF-8")
    if data.startswith(codecs.BOM_UTF8):
        data = data[len(codecs.BOM_UTF8):]
    if b"\x00" in data:  # no text has NULs; UTF-16 without a BOM is half NULs
        fail("is not UTF-8 text: it contains NUL bytes (binary, or UTF-16 without a byte-order mark); it must be UTF-8")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        fail(f"is not UTF-8 text (byte 0x{data[exc.start]:02x} at offset {exc.start}); it must be UTF-8")


def read_text(path: str | os.PathLike, kind: Kind) -> str:
    """The text of a recipe or config file: a regular file of at most 1 MiB, UTF-8."""
    fail = _failer(kind, path)
    return decode_text(_read_regular(Path(path), MAX_TEXT_BYTES, fail), fail)


def format_of(path: str | os.PathLike) -> Optional[Format]:
    """JSON for `.json`, YAML for `.yaml`/`.yml`; for any other name, None (decided by content)."""
    suffix = Path(path).suffix.lower()
    return "json" if suffix == ".json" else "yaml" if suffix in (".yaml", ".yml") else None


def load_file(path: str | os.PathLike, kind: Kind) -> Any:
    """Read and parse a recipe or config file; the parser is chosen by the file's extension."""
    text = read_text(path, kind)
    return parse_text(text, kind, source=path, fmt=format_of(path))


def parse_text(text: str, kind: Kind, source: str | os.PathLike | None = None, fmt: Optional[Format] = None) -> Any:
    """Parse JSON or YAML text. With no format given, text that opens with '{' or '[' is JSON
    (YAML only if the JSON parser finds no JSON there: a YAML flow mapping), anything else YAML."""
    fail = _failer(kind, source)
    if text.startswith("\ufeff"):
        text = text[1:]
    if "\x00" in text:
        fail("is not text: it contains NUL characters")
    if len(text) > MAX_TEXT_BYTES:  # a string handed in directly never passed the file gate
        fail(f"is {len(text)} characters; the limit is {MAX_TEXT_BYTES}")
    if fmt == "yaml":
        return _parse_yaml(text, fail)
    if fmt == "json":
        try:
            return _parse_json(text, fail)
        except _NotJson as not_json:
            fail(not_json.message)
    if text.lstrip().startswith(("{", "[")):
        try:
            return _parse_json(text, fail)
        except _NotJson as not_json:
            try:
                return _parse_yaml(text, fail)
            except (RecipeFileError, ConfigFileError):
                fail(not_json.message)  # it looked like JSON: the JSON parser's complaint is the useful one
    return _parse_yaml(text, fail)


def json_compatible(data: Any, kind: Kind, source: str | os.PathLike | None = None) -> Any:
    """YAML's data as JSON can hold it, for what is stored as JSON: a timestamp (`start: 2026-12-01
    21:00:00+00:00` unquoted) becomes its ISO 8601 text; a key that is not a string, a set
    (`!!set`) or bytes (`!!binary`) is refused, naming the key path. No recursive structure reaches
    here (refused at parse)."""
    fail = _failer(kind, source)

    def plain(node: Any, path: str) -> Any:
        if isinstance(node, dict):
            out = {}
            for k, v in node.items():
                if not isinstance(k, str):
                    fail(f"key {str(k)[:40]!r} at '{path or '(top level)'}' is a {type(k).__name__}; keys must be "
                         "strings (quote it)", field=path or "(top level)")
                out[k] = plain(v, f"{path}.{k}" if path else k)
            return out
        if isinstance(node, list):
            return [plain(v, f"{path}[{i}]") for i, v in enumerate(node)]
        if isinstance(node, (dt.date, dt.datetime)):
            return node.isoformat()
        if node is None or isinstance(node, (str, bool, int, float)):
            return node
        fail(f"'{path}' is a {type(node).__name__}, which JSON cannot hold; use a string, number, list or mapping",
             field=path or "(top level)")

    return plain(data, "")


# ---- JSON ---------------------------------------------------------------------------------------
class _NotJson(Exception):
    def __init__(self, message: str):
        self.message = message


_JSON_STRING = re.compile(r'"(?:[^"\\\n]|\\.)*"')
_BRACKET = re.compile(r"[\[\]{}]")


def _json_depth_exceeded(text: str) -> Optional[int]:
    """The line where nesting first passes MAX_DEPTH, found without building anything (the C JSON
    parser recurses once per level: 100 000 levels is a RecursionError, not an answer)."""
    stripped = _JSON_STRING.sub('""', text)  # brackets inside strings do not nest; newlines are kept
    depth = 0
    for m in _BRACKET.finditer(stripped):
        depth += 1 if m.group() in "[{" else -1
        if depth > MAX_DEPTH:
            return stripped.count("\n", 0, m.start()) + 1
    return None


class _Duplicates(dict):
    """A JSON object in which a key appeared twice; `duplicate` is that key."""

    duplicate: str = ""


def _parse_json(text: str, fail: Callable[..., NoReturn]) -> Any:
    line = _json_depth_exceeded(text)
    if line is not None:
        fail(f"nests deeper than {MAX_DEPTH} levels (at line {line}); the limit is {MAX_DEPTH}")
    seen_duplicate = False

    def pairs(items: list[tuple[str, Any]]) -> dict:
        nonlocal seen_duplicate
        out: dict = {}
        for key, value in items:
            if key in out and not seen_duplicate:
                seen_duplicate = True
                out = _Duplicates(out)
                out.duplicate = key
            out[key] = value
        return out

    def no_constant(name: str) -> NoReturn:  # Python's json accepts NaN and Infinity; JSON does not
        fail(f"is not valid JSON: {name} is not a JSON number")

    try:
        data = json.loads(text, object_pairs_hook=pairs, parse_constant=no_constant)
    except json.JSONDecodeError as exc:
        raise _NotJson(f"is not valid JSON at line {exc.lineno}, column {exc.colno}: {exc.msg}") from None
    except RecursionError:  # unreachable after the depth scan; kept so no input can end in a traceback
        fail(f"nests deeper than {MAX_DEPTH} levels; the limit is {MAX_DEPTH}")
    except ValueError as exc:  # e.g. an integer of more than 4300 digits
        fail(f"is not valid JSON: {_value_problem(exc)}")
    if seen_duplicate:
        path = _find_duplicate(data)
        fail(f"key '{path}' appears more than once; each key may appear only once", field=path)
    return data


def _find_duplicate(data: Any) -> str:
    stack: list[tuple[Any, str]] = [(data, "")]
    while stack:
        node, prefix = stack.pop()
        if isinstance(node, _Duplicates):
            return f"{prefix}{node.duplicate}"
        items = node.items() if isinstance(node, dict) else enumerate(node) if isinstance(node, list) else ()
        stack.extend((v, f"{prefix}{k}.") for k, v in items)
    return "?"


def _value_problem(exc: Exception) -> str:
    # Python refuses int() of more than 4300 digits (sys.int_info.default_max_str_digits).
    return "a number has more than 4300 digits" if "integer string conversion" in str(exc) else str(exc)


# ---- YAML ---------------------------------------------------------------------------------------
class _TooDeep(Exception):
    def __init__(self, mark: Any):
        self.mark = mark


class _BoundedLoader(yaml.SafeLoader):
    """PyYAML's SafeLoader with a bound on nesting: its composer recurses once per level."""

    def __init__(self, stream: str):
        super().__init__(stream)
        self._depth = 0

    def compose_node(self, parent: Any, index: Any) -> Any:
        self._depth += 1
        try:
            if self._depth > MAX_DEPTH:
                raise _TooDeep(self.peek_event().start_mark)
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1


def _at(mark: Any) -> str:
    return f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""


def _parse_yaml(text: str, fail: Callable[..., NoReturn]) -> Any:
    try:  # the reader checks every character on construction: "\x01" is a ReaderError here
        loader = _BoundedLoader(text)
    except yaml.YAMLError as exc:
        fail(f"is not valid YAML: {exc}")
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        _refuse_duplicate_keys(node, fail)
        _refuse_alias_bombs(node, fail)
        return loader.construct_document(node)
    except _TooDeep as exc:
        fail(f"nests deeper than {MAX_DEPTH} levels{_at(exc.mark)}; the limit is {MAX_DEPTH}")
    except yaml.MarkedYAMLError as exc:
        fail(f"is not valid YAML{_at(exc.problem_mark)}: {exc.problem or exc.context}")
    except yaml.YAMLError as exc:
        fail(f"is not valid YAML: {exc}")
    except (ValueError, TypeError) as exc:  # e.g. an integer of more than 4300 digits
        fail(f"is not valid YAML: {_value_problem(exc)}")
    except (AttributeError, KeyError, IndexError, OverflowError) as exc:
        # PyYAML's constructors trust the explicit tags they dispatch on: `!!timestamp x` is an
        # AttributeError inside it (found by tests/test_fuzz_parsers.py), not a YAMLError.
        fail(f"is not valid YAML: a value cannot be built from its tag ({type(exc).__name__}: {str(exc)[:80]})")
    finally:
        loader.dispose()


_MERGE = "tag:yaml.org,2002:merge"


def _refuse_duplicate_keys(root: yaml.Node, fail: Callable[..., NoReturn]) -> None:
    """Two equal scalar keys in one mapping: PyYAML keeps the last silently; we name the key path.
    Aliases make the node graph a DAG: each node is visited once (a 'billion laughs' stays cheap)."""
    seen_nodes: set[int] = set()
    stack: list[tuple[yaml.Node, str]] = [(root, "")]
    while stack:
        node, prefix = stack.pop()
        if id(node) in seen_nodes:
            continue
        seen_nodes.add(id(node))
        if isinstance(node, yaml.MappingNode):
            keys: dict[tuple[str, str], Any] = {}
            for key_node, value_node in node.value:
                if isinstance(key_node, yaml.ScalarNode) and key_node.tag != _MERGE:
                    key = (key_node.tag, key_node.value)
                    if key in keys:
                        path = f"{prefix}{key_node.value}"
                        fail(f"key '{path}' appears more than once (lines {keys[key].line + 1} and "
                             f"{key_node.start_mark.line + 1}); each key may appear only once", field=path)
                    keys[key] = key_node.start_mark
                    stack.append((value_node, f"{prefix}{key_node.value}."))
                else:
                    stack.append((value_node, prefix))
        elif isinstance(node, yaml.SequenceNode):
            stack.extend((item, f"{prefix}{i}.") for i, item in enumerate(node.value))


def _refuse_alias_bombs(root: yaml.Node, fail: Callable[..., NoReturn]) -> None:
    """Aliases that expand past MAX_EXPANDED_NODES (the "billion laughs": 9 anchors of 10 aliases
    each are 10^9 nodes), or that refer to a node containing them (a recursive structure, which
    no JSON can hold and no validator ends on), are refused; each node is sized once."""
    size: dict[int, int] = {}
    on_path: set[int] = set()
    stack: list[tuple[yaml.Node, bool]] = [(root, False)]
    while stack:
        node, done = stack.pop()
        key = id(node)
        children = ([n for pair in node.value for n in pair] if isinstance(node, yaml.MappingNode)
                    else node.value if isinstance(node, yaml.SequenceNode) else [])
        if done:
            on_path.discard(key)
            size[key] = 1 + sum(size[id(c)] for c in children)
            if size[key] > MAX_EXPANDED_NODES:
                fail(f"expands to more than {MAX_EXPANDED_NODES} nodes through aliases{_at(node.start_mark)} "
                     f"(a \"billion laughs\"); the limit is {MAX_EXPANDED_NODES}")
            continue
        if key in size:
            continue
        on_path.add(key)
        stack.append((node, True))
        for child in children:
            if id(child) in on_path:
                fail(f"an alias refers to a node that contains it{_at(child.start_mark)} (a recursive structure); "
                     "aliases may only repeat a node defined before and outside them")
            if id(child) not in size:
                stack.append((child, False))


# ---- images -------------------------------------------------------------------------------------
def open_image(path: str | os.PathLike, field: str = "visual_track.actor_image", ref: Optional[str] = None,
               decode: bool = True):
    """A PIL image read safely: a regular file of at most 50 MB whose header claims at most 40 MP,
    checked before any pixel is decoded (a 30000x30000 PNG of a few KB would decode to 2.7 GB).
    `decode=False` verifies the file's structure without decoding it (the recipe's check at the
    door); the image returned then cannot be used for pixels. Every problem is a RecipeError on `field`."""
    from PIL import Image, UnidentifiedImageError

    _quiet_pil_bomb_warning(Image)
    ref = str(path) if ref is None else ref

    def fail(problem: str) -> NoReturn:
        problem = problem.removeprefix("cannot be read: ") if problem.startswith("cannot be read: ") else f"it {problem}"
        raise RecipeError(field, f"cannot read image '{ref}': {problem}")

    data = _read_regular(Path(path), MAX_IMAGE_BYTES, fail)
    try:
        im = Image.open(io.BytesIO(data))  # reads the header only
    except UnidentifiedImageError:
        fail("is not an image format Pillow reads (PNG, JPEG, WebP, BMP, TIFF, ...)")
    except (OSError, ValueError, SyntaxError) as exc:
        fail(f"is not a readable image: {exc}")
    except Image.DecompressionBombError:  # PIL's own guard, at 2 x Image.MAX_IMAGE_PIXELS
        fail(f"claims more than {2 * Image.MAX_IMAGE_PIXELS / 1e6:.0f} megapixels; the limit is "
             f"{MAX_IMAGE_PIXELS / 1e6:g} megapixels")
    width, height = im.size
    if width * height > MAX_IMAGE_PIXELS:
        fail(f"is {width}x{height} = {width * height / 1e6:.1f} megapixels; the limit is "
             f"{MAX_IMAGE_PIXELS / 1e6:g} megapixels (a portrait needs far fewer: the slot uses 512x512)")
    if width < 1 or height < 1:
        fail(f"is {width}x{height}: an image with no pixels")
    try:
        if decode:
            im.load()
        else:
            im.verify()
    except Image.DecompressionBombError:  # another frame of the file claims more
        fail(f"is too large an image; the limit is {MAX_IMAGE_PIXELS / 1e6:g} megapixels")
    except (OSError, ValueError, SyntaxError, EOFError) as exc:
        fail(f"is not a readable image: {exc}")
    return im


def _quiet_pil_bomb_warning(Image: Any) -> None:
    """PIL warns (on stderr) about images between 89 and 179 MP; our own 40 MP limit refuses them
    first with a message, so the warning would only be noise on the user's terminal."""
    import warnings

    warnings.filterwarnings("ignore", category=Image.DecompressionBombWarning)
