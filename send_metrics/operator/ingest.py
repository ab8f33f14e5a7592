"""What reaches the collector, turned back into the event dicts the wrapper made: Segment's
`track` messages (one, or a `batch`), OTLP/HTTP logs (JSON or protobuf) and the http sink's JSON.
Each event is checked against the schema of its own `schema_version` (every released one) and
against what the store can hold; a request is taken whole or refused whole (400), so a sink that
splits a refused batch finds the one event at fault.

Nothing from a request is ever echoed: errors name the event's place and the field, never a
value (a value may be anything a sender put there)."""

from __future__ import annotations

import json
import math
import re
import zlib
from collections.abc import Callable, Iterable, Iterator, Mapping
from datetime import UTC, datetime, timedelta
from importlib import resources
from typing import Any

from send_metrics.delivery import sinks

# Deferred imports: the schema, protobuf (OTLP's binary encoding) and ast load only for the
# requests that need them.

Event = dict[str, Any]
Check = Callable[[Any], str | None]

# A request may hold at most this many events (Segment allows 2,500 a batch, our OTLP sink 500).
MAX_EVENTS = 5_000
# Integers the store keeps in 64 bits; every other integer field in 32 (the report's INTEGER).
INT64_FIELDS = frozenset({"peak_memory_bytes", "memory_total_bytes"})
INT32 = 2**31
INT64 = 2**63
TIME_FIELDS = ("start_time", "git_commit_time")
EARLIEST = datetime(1970, 1, 1, tzinfo=UTC)


class BadRequest(Exception):
    """The request cannot be taken: its status (400 or 413) and one line that echoes nothing."""

    status = 400

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


# ---- bodies ----


def inflate(body: bytes, encoding: str, limit: int) -> bytes:
    """The body as sent, decompressed (gzip or deflate) to at most `limit` bytes: a body that
    would inflate beyond it is refused (413) after `limit` bytes of work, whatever its ratio."""
    encoding = encoding.strip().lower()
    if encoding in ("", "identity"):
        return body
    if encoding not in ("gzip", "x-gzip", "deflate"):
        raise BadRequest(f"Content-Encoding {encoding[:20]!r} is not supported (gzip or deflate)")
    wbits = 31 if encoding != "deflate" else 47  # deflate: zlib-wrapped (47 also takes gzip)
    out: list[bytes] = []
    size = 0
    rest = body
    try:
        while rest:
            unpacker = zlib.decompressobj(wbits)
            chunk = unpacker.decompress(rest, limit - size + 1)
            size += len(chunk)
            out.append(chunk)
            if size > limit or unpacker.unconsumed_tail:
                raise BadRequest(f"body larger than {limit} bytes once decompressed", 413)
            if not unpacker.eof:
                raise BadRequest(f"{encoding} body is cut short")
            rest = unpacker.unused_data  # gzip allows several members, one after another
    except zlib.error:
        raise BadRequest(f"{encoding} body cannot be decompressed") from None
    return b"".join(out)


def _no_constant(name: str) -> Any:
    raise ValueError("NaN and Infinity are not JSON")


def parse_json(body: bytes) -> Any:
    """Strict JSON: UTF-8, no NaN or Infinity; any failure is one 400 line."""
    try:
        return json.loads(body, parse_constant=_no_constant)
    except (ValueError, RecursionError, UnicodeDecodeError):
        raise BadRequest("body is not valid JSON") from None


# ---- the schema of every released schema_version, compiled to plain checks ----


def _utf8(value: str) -> bool:
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate from a \ud800 escape: not storable text
        return False
    return True


_PYTHON_TYPES: dict[str, tuple[type, ...]] = {
    "null": (type(None),),
    "boolean": (bool,),
    "integer": (int, float),  # a float only when whole (2.0 is an integer in JSON Schema)
    "number": (int, float),
    "string": (str,),
    "array": (list,),
    "object": (dict,),
}


def _pattern(text: str) -> re.Pattern[str]:
    """A schema pattern as ECMA-262 reads it: `$` ends the text (Python's also matches before a
    final newline)."""
    return re.compile(text[:-1] + r"\Z" if text.endswith("$") else text)


def compile_schema(spec: Mapping[str, Any]) -> Check:
    """A check for the keywords our schemas use (type, const, enum, pattern, lengths, bounds,
    items, properties, required, additionalProperties): None when the value passes, else the
    first problem, naming the field but never the value. One closure per schema node, the
    keywords it lacks skipped by flags: about 30 µs an event."""
    types = spec.get("type")
    names = [types] if isinstance(types, str) else list(types or ())
    allowed = frozenset(t for n in names for t in _PYTHON_TYPES[n])
    wrong_type = f"not {' or '.join(names)}"
    floats = "number" in names  # finite floats; with only "integer", whole ones
    has_const, const = "const" in spec, spec.get("const")
    choices = spec.get("enum")
    pattern = _pattern(spec["pattern"]) if "pattern" in spec else None
    most_chars = spec.get("maxLength")
    least = spec.get("minimum")
    most_items = spec.get("maxItems")
    item = compile_schema(spec["items"]) if "items" in spec else None
    fields = _object(spec) if "properties" in spec else None

    def check(v: Any) -> str | None:
        kind = type(v)
        if allowed and kind not in allowed:
            return wrong_type
        if kind is float:
            if not (math.isfinite(v) if floats else v.is_integer()):
                return wrong_type
        elif kind is str:
            if not v.isascii() and not _utf8(v):
                return "not UTF-8 text"
            if pattern is not None and not pattern.search(v):
                return "does not match its pattern"
            if most_chars is not None and len(v) > most_chars:
                return f"longer than {most_chars}"
        elif kind is list:
            if most_items is not None and len(v) > most_items:
                return f"more than {most_items} items"
            if item is not None:
                for i, element in enumerate(v):
                    problem = item(element)
                    if problem:
                        return f"[{i}]{'' if problem.startswith('.') else ': '}{problem}"
        elif kind is dict and fields is not None:
            return fields(v)
        if has_const and (v != const or kind is bool):
            return "not the expected value"
        if choices is not None and (kind is not str or v not in choices):
            return "not an allowed value"
        if least is not None and kind in (int, float) and v < least:
            return f"below {least}"
        return None

    return check


def _settled(spec: Mapping[str, Any]) -> tuple[frozenset[type], bool]:
    """The Python types a value of `spec` may have with nothing more to check, and whether an
    ASCII string is one: the object check skips calling the field's check for those (most of
    an event's fields), which halves the time of a check."""
    types = spec.get("type")
    names = [types] if isinstance(types, str) else list(types or ())
    if not names or "const" in spec or "enum" in spec:
        return frozenset(), False
    settled: set[type] = set()
    if "null" in names:
        settled.add(type(None))
    if "boolean" in names:
        settled.add(bool)
    if ("integer" in names or "number" in names) and "minimum" not in spec:
        settled.add(int)
    plain_text = "string" in names and not {"pattern", "maxLength"} & set(spec)
    return frozenset(settled), plain_text


def _object(spec: Mapping[str, Any]) -> Check:
    fields = {name: compile_schema(sub) for name, sub in spec["properties"].items()}
    settled = {name: _settled(sub) for name, sub in spec["properties"].items()}
    required = list(spec.get("required", ()))
    closed = spec.get("additionalProperties", True) is False

    def check(value: Any) -> str | None:
        if type(value) is not dict:
            return None
        for name in required:
            if name not in value:
                return f".{name}: missing"
        for name, field in value.items():
            one = fields.get(name)
            if one is None:
                if closed:
                    return "a field the schema does not name"
                continue
            kinds, plain_text = settled[name]
            kind = type(field)
            if kind in kinds or (plain_text and kind is str and field.isascii()):
                continue
            problem = one(field)
            if problem:
                return f".{name}: {problem}"
        return None

    return check


def released_schemas() -> dict[int, dict[str, Any]]:
    """Every released event schema by its schema_version: the shipped one and the older ones
    kept in `operator/schemas/` (a new version adds the one it replaces there)."""
    from send_metrics.event.event import schema

    found: dict[int, dict[str, Any]] = {}
    for item in resources.files("send_metrics.operator").joinpath("schemas").iterdir():
        if item.name.endswith(".json"):
            old = json.loads(item.read_text(encoding="utf-8"))
            found[old["properties"]["schema_version"]["const"]] = old
    current = schema()
    found[current["properties"]["schema_version"]["const"]] = current
    return found


class Validator:
    """Checks events against the schema of their schema_version and the store's limits."""

    def __init__(self) -> None:
        self.schemas = released_schemas()
        self.fields = {v: list(s["properties"]) for v, s in self.schemas.items()}
        self._checks = {v: compile_schema(s) for v, s in self.schemas.items()}
        self.versions = sorted(self._checks)

    def _fill(self, event: Event) -> None:
        """Absent fields as null, in the event and in the members of its make breakdown (the
        otlp sink leaves null attributes and null key-value members out)."""
        version = event.get("schema_version")
        spec = self.schemas.get(version) if type(version) is int else None
        if spec is None:
            return
        for name in spec["properties"]:
            event.setdefault(name, None)
        for name, value in event.items():
            sub = spec["properties"].get(name, {})
            items = sub.get("items", {})
            members = value if type(value) is list else [value]
            required = items.get("required") if type(value) is list else sub.get("required")
            for member in members:
                if type(member) is dict and required:
                    for key in required:
                        member.setdefault(key, None)

    def problem(self, event: Any) -> str | None:
        """None when the event can be stored, else what is wrong (no value echoed)."""
        if type(event) is not dict:
            return "not a JSON object"
        version = event.get("schema_version")
        check = self._checks.get(version) if type(version) is int else None
        if check is None:
            return f"schema_version is not one of {self.versions}"
        problem = check(event)
        if problem:
            return problem.lstrip(".")
        return _storable(event)

    def check_all(self, events: list[Event], fill: bool = False) -> list[Event]:
        """The events, each valid and storable (floats that are whole numbers where the schema
        says integer become ints); else BadRequest naming the first one at fault. `fill`: absent
        fields are null (the otlp sink leaves null attributes out)."""
        if len(events) > MAX_EVENTS:
            raise BadRequest(f"more than {MAX_EVENTS} events in one request", 413)
        for i, event in enumerate(events):
            if fill and type(event) is dict:
                self._fill(event)
            problem = self.problem(event)
            if problem:
                raise BadRequest(f"event {i}: {problem}")
        return events


def parse_time(text: str) -> datetime | None:
    """An ISO 8601 time with its offset, as UTC; None when it is not one."""
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        return None
    if moment.tzinfo is None:
        return None
    try:
        moment = moment.astimezone(UTC)
    except OverflowError:
        return None
    return moment if moment >= EARLIEST else None


_WHOLE = frozenset(
    {
        "schema_version",
        "consent_version",
        "exit_code",
        "peak_memory_bytes",
        "make_targets_omitted",
        "git_behind_upstream",
        "cpu_count",
        "memory_total_bytes",
    }
)


FUTURE_SLACK = timedelta(days=1)  # clocks ahead by less than this are taken as they are


def _storable(event: Event) -> str | None:
    """The limits of the store beyond the schema: times with an offset, integers in range."""
    for name in TIME_FIELDS:
        value = event.get(name)
        if value is not None and parse_time(value) is None:
            return f"{name}: not a date-time with a UTC offset after 1970"
    start = parse_time(event["start_time"]) if event.get("start_time") is not None else None
    if start is not None and start > datetime.now(UTC) + FUTURE_SLACK:
        return "start_time: more than a day in the future"  # it would outlive retention
    for name, value in event.items():
        if type(value) is float and name in _WHOLE:  # the schema took it as an integer
            event[name] = value = int(value)
        if type(value) is int:
            bound = INT64 if name in INT64_FIELDS else INT32
            if not -bound <= value < bound:
                return f"{name}: out of range"
    targets = event.get("make_targets") or ()
    for i, target in enumerate(targets):
        for key in ("exit_code", "lines", "depth"):
            value = target.get(key)
            if value is not None:
                value = target[key] = int(value)
                if not -INT32 <= value < INT32:
                    return f"make_targets[{i}].{key}: out of range"
    files = event.get("make_file_targets")
    if files is not None:
        for key in ("count", "critical"):
            value = files[key] = int(files[key])
            if not -INT32 <= value < INT32:
                return f"make_file_targets.{key}: out of range"
    return None


# ---- Segment: `track` and `batch` ----


def from_segment(doc: Any, batch: bool) -> list[Event]:
    """The events in a Segment `/v1/track` message or a `/v1/batch` request (only `track`
    messages carry our events: anything else is refused)."""
    if type(doc) is not dict:
        raise BadRequest("body is not a JSON object")
    messages = doc.get("batch") if batch else [doc]
    if type(messages) is not list:
        raise BadRequest("batch is not a list")
    if len(messages) > MAX_EVENTS:
        raise BadRequest(f"more than {MAX_EVENTS} events in one request", 413)
    events = []
    for i, message in enumerate(messages):
        if type(message) is not dict:
            raise BadRequest(f"message {i}: not a JSON object")
        if message.get("type", "track") != "track":
            raise BadRequest(f"message {i}: only track messages are taken")
        properties = message.get("properties")
        if type(properties) is not dict:
            raise BadRequest(f"message {i}: properties is not an object")
        event = dict(properties)
        event["event"] = message.get("event")
        event["anonymous_id"] = message.get("anonymousId")
        event["message_id"] = message.get("messageId")
        events.append(event)
    return events


# ---- the http sink: one event (or a list of them) as JSON ----


def from_http(doc: Any) -> list[Event]:
    if type(doc) is list:
        if len(doc) > MAX_EVENTS:
            raise BadRequest(f"more than {MAX_EVENTS} events in one request", 413)
        return doc
    return [doc]


# ---- OTLP/HTTP logs ----

_FROM_RESOURCE = {name: field for field, name in sinks.OTLP_RESOURCE.items()}
_FROM_RECORD = {name: field for field, name in sinks.OTLP_RECORD.items()}
_PREFIX = "send_metrics."
_INT_TEXT = re.compile(r"-?[0-9]{1,19}\Z")
_BREAKDOWN = ("make_targets", "make_file_targets")
MAX_REPR = 4_000  # an old-form breakdown entry (a Python repr) is at most this long


def _json_any(value: Any) -> Any:
    """An OTLP AnyValue in its JSON form, as a plain value ({} is null)."""
    if type(value) is not dict:
        raise BadRequest("an attribute value is not an AnyValue")
    if not value:
        return None
    if "stringValue" in value:
        return value["stringValue"]
    if "boolValue" in value:
        return value["boolValue"]
    if "intValue" in value:
        number = value["intValue"]
        if type(number) is str and _INT_TEXT.match(number):
            return int(number)
        if type(number) is int:
            return number
        raise BadRequest("an intValue is not an integer")
    if "doubleValue" in value:
        double = value["doubleValue"]
        if type(double) in (int, float):
            return double
        raise BadRequest("a doubleValue is not a finite number")
    if "arrayValue" in value:
        return [_json_any(v) for v in _values(value["arrayValue"])]
    if "kvlistValue" in value:
        return _json_pairs(_values(value["kvlistValue"]))
    raise BadRequest("an AnyValue of a kind events do not use")


def _values(holder: Any) -> list[Any]:
    values = holder.get("values", []) if type(holder) is dict else None
    if type(values) is not list:
        raise BadRequest("an array or kvlist value is not a list")
    return values


def _json_pairs(pairs: Any) -> dict[str, Any]:
    if type(pairs) is not list:
        raise BadRequest("attributes are not a list")
    found = {}
    for pair in pairs:
        if type(pair) is not dict or type(pair.get("key")) is not str:
            raise BadRequest("an attribute has no key")
        if pair["key"] in found:
            raise BadRequest("an attribute key appears twice in one list")
        found[pair["key"]] = _json_any(pair.get("value", {}))
    return found


def _list(doc: Mapping[str, Any], key: str) -> list[Any]:
    value = doc.get(key, [])
    if type(value) is not list:
        raise BadRequest(f"{key} is not a list")
    return value


def _object_at(doc: Mapping[str, Any], key: str) -> Mapping[str, Any]:
    value = doc.get(key, {})
    if type(value) is not dict:
        raise BadRequest(f"{key} is not an object")
    return value


def from_otlp_json(doc: Any) -> list[Event]:
    """The events in an ExportLogsServiceRequest in OTLP's JSON encoding."""
    if type(doc) is not dict:
        raise BadRequest("body is not a JSON object")

    def records() -> Iterator[tuple[dict[str, Any], dict[str, Any], str | None]]:
        for resource_logs in _list(doc, "resourceLogs"):
            if type(resource_logs) is not dict:
                raise BadRequest("resourceLogs holds something else than objects")
            resource = _json_pairs(_list(_object_at(resource_logs, "resource"), "attributes"))
            for scope_logs in _list(resource_logs, "scopeLogs"):
                if type(scope_logs) is not dict:
                    raise BadRequest("scopeLogs holds something else than objects")
                for record in _list(scope_logs, "logRecords"):
                    if type(record) is not dict:
                        raise BadRequest("logRecords holds something else than objects")
                    name = record.get("eventName")
                    yield resource, _json_pairs(_list(record, "attributes")), name

    return _otlp_events(records())


def _proto_any(value: Any) -> Any:
    kind = value.WhichOneof("value")
    if kind is None:
        return None
    if kind == "array_value":
        return [_proto_any(v) for v in value.array_value.values]
    if kind == "kvlist_value":
        return _proto_pairs(value.kvlist_value.values)
    if kind == "bytes_value":
        raise BadRequest("an AnyValue of a kind events do not use")
    return getattr(value, kind)


def _proto_pairs(pairs: Iterable[Any]) -> dict[str, Any]:
    found: dict[str, Any] = {}
    for pair in pairs:
        if pair.key in found:
            raise BadRequest("an attribute key appears twice in one list")
        found[pair.key] = _proto_any(pair.value)
    return found


def from_otlp_protobuf(body: bytes) -> list[Event]:
    """The events in an ExportLogsServiceRequest in OTLP's protobuf encoding."""
    from google.protobuf.message import DecodeError
    from opentelemetry.proto.collector.logs.v1 import logs_service_pb2

    request = logs_service_pb2.ExportLogsServiceRequest()
    try:
        request.ParseFromString(body)
    except (DecodeError, RecursionError, ValueError):
        raise BadRequest("body is not an OTLP protobuf ExportLogsServiceRequest") from None

    def records() -> Iterator[tuple[dict[str, Any], dict[str, Any], str | None]]:
        for resource_logs in request.resource_logs:
            resource = _proto_pairs(resource_logs.resource.attributes)
            for scope_logs in resource_logs.scope_logs:
                for record in scope_logs.log_records:
                    name = getattr(record, "event_name", "") or None
                    yield resource, _proto_pairs(record.attributes), name

    try:
        return _otlp_events(records())
    except UnicodeDecodeError:  # a string field that is not UTF-8 (protobuf checks lazily)
        raise BadRequest("an OTLP string is not UTF-8") from None


def _otlp_events(
    records: Iterable[tuple[dict[str, Any], dict[str, Any], str | None]],
) -> list[Event]:
    """Log records back to events: resource and record attributes by the names the otlp sink
    gives them; attributes that are not event fields (an SDK's own) are left out."""
    events: list[Event] = []
    for resource, attributes, name in records:
        if len(events) >= MAX_EVENTS:
            raise BadRequest(f"more than {MAX_EVENTS} events in one request", 413)
        event: Event = {}
        for key, value in resource.items():
            field = _FROM_RESOURCE.get(key)
            if field is not None:
                event[field] = value
        for key, value in attributes.items():
            field = _FROM_RECORD.get(key)
            if field is None and key.startswith(_PREFIX):
                field = key[len(_PREFIX) :]
            if field is not None:
                event[field] = value
        if "event" not in event and name:
            event["event"] = name
        args = event.get("command_args")
        if type(args) is list:  # the sink sends the whole command line, the command first
            event["command_args"] = args[1:]
        for field in _BREAKDOWN:
            event[field] = _breakdown(event.get(field))
        events.append(event)
    return events


def _breakdown(value: Any) -> Any:
    """make_targets and make_file_targets: key-value lists, or (before the otlp sink sent
    those) Python repr text of each dict, read as a literal and nothing more."""
    if type(value) is str:
        return _literal(value)
    if type(value) is list:
        return [_literal(v) if type(v) is str else v for v in value]
    return value


def _literal(text: str) -> Any:
    import ast

    if len(text) > MAX_REPR:
        raise BadRequest("a make breakdown entry is too long")
    try:
        value = ast.literal_eval(text)
    except (ValueError, SyntaxError, MemoryError, RecursionError, TypeError):
        raise BadRequest("a make breakdown entry is not readable") from None
    if type(value) is not dict:
        raise BadRequest("a make breakdown entry is not a mapping")
    return value


# ---- which path speaks which format ----

SEGMENT_PATHS = {"/v1/track": False, "/v1/batch": True}
OTLP_PATH = "/v1/logs"
HTTP_PATHS = ("/", "/v1/events")
PROTOBUF_TYPES = ("application/x-protobuf", "application/protobuf")


def decode(path: str, content_type: str, body: bytes, validator: Validator) -> list[Event]:
    """The validated events of one request body (already decompressed) sent to `path`."""
    media = content_type.partition(";")[0].strip().lower()
    if path == OTLP_PATH:
        if media in PROTOBUF_TYPES:
            events = from_otlp_protobuf(body)
        else:
            events = from_otlp_json(parse_json(body))
    elif path in SEGMENT_PATHS:
        events = from_segment(parse_json(body), SEGMENT_PATHS[path])
    else:
        events = from_http(parse_json(body))
    return validator.check_all(events, fill=path == OTLP_PATH)
