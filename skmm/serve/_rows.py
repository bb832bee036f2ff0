"""Request rows, checked against the model's input columns and decoded into a DataFrame.

JSON bodies (``{"rows": [...]}`` or ``{"row": {...}}``, files as base64) and multipart forms
(one row: files for file columns, form fields for the others) become rows; :class:`RowDecoder`
checks their columns and each value (uploads by their kind's ``check_upload``, numbers finite,
texts within ``max_text_chars``) and builds the DataFrame the pipeline predicts. A bad request
raises :class:`RequestError` with its HTTP status and a message naming the field.
"""

import base64
import binascii
import json
import math

import pandas as pd

from ..kinds import COLUMN_KINDS


class RequestError(Exception):
    """A bad request: ``status`` and a message naming the field."""

    def __init__(self, status, message):
        super().__init__(message)
        self.status = status
        self.message = message


def _decode_base64(text, column, row):
    text = text.strip()
    if text.startswith("data:") and "," in text:  # data URI: data:image/png;base64,....
        text = text.split(",", 1)[1]
    text = "".join(text.split())
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise RequestError(
            422,
            f"column {column!r}, row {row}: not valid base64 ({exc}); send the file's bytes "
            "base64-encoded (a path is never read).",
        ) from None


def _upload_kind(kind):
    """The registry entry of ``kind`` when its columns arrive as uploaded files, else None."""
    entry = COLUMN_KINDS.get(kind)
    if entry is not None and entry.takes_uploads:
        return entry
    return None


def _file_value(value, entry, column, row):
    """Bytes of one uploaded file of the kind ``entry``, refused unless its header reads."""
    if value is None:
        return None
    if isinstance(value, str):
        if not value.strip():
            return None
        value = _decode_base64(value, column, row)
    elif not isinstance(value, bytes):
        raise RequestError(
            422,
            f"column {column!r}, row {row}: expected the {entry.name} as a base64 string (or null), "
            f"got {type(value).__name__}.",
        )
    if not value:
        return None
    if entry.check_upload is not None:
        try:
            entry.check_upload(value)
        except ValueError as exc:
            raise RequestError(422, f"column {column!r}, row {row}: {exc}.") from None
    return value


def _finite(number, column, row, shown):
    """``number`` as a float, refused (422) when it is infinite or too large for a float."""
    try:
        number = float(number)
    except OverflowError:
        number = math.inf
    if math.isinf(number):
        raise RequestError(
            422, f"column {column!r}, row {row}: {shown:.60} is out of range; expected a finite "
            "number (or null)."
        )
    return number


def _numeric_value(value, column, row):
    if value is None or (isinstance(value, str) and not value.strip()):
        return math.nan
    if isinstance(value, bool):  # JSON true is not the number 1
        raise RequestError(
            422, f"column {column!r}, row {row}: expected a number (or null), got {str(value).lower()}."
        )
    if isinstance(value, (int, float)):
        return _finite(value, column, row, "the number" if isinstance(value, int) else repr(value))
    if isinstance(value, str):
        try:
            number = float(value)
        except ValueError:
            pass
        else:
            return _finite(number, column, row, repr(value))
    raise RequestError(
        422, f"column {column!r}, row {row}: expected a number (or null), got {value!r:.60}."
    )


def _plain_value(value, column, row, max_text_chars=None):
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        if isinstance(value, float) and math.isnan(value):
            return None
        _finite(value, column, row, "the number" if isinstance(value, int) else repr(value))
        if isinstance(value, int) and not -(2**63) <= value < 2**63:
            raise RequestError(
                422, f"column {column!r}, row {row}: the integer is out of range (more than 64 bits)."
            )
        return value
    if isinstance(value, str) and max_text_chars is not None and len(value) > max_text_chars:
        raise RequestError(
            422, f"column {column!r}, row {row}: the text has {len(value):,} characters, over the "
            f"limit of {max_text_chars:,} (the server's --max-text-chars); send a shorter text."
        )
    if value is None or isinstance(value, (str, bool)):
        return value
    raise RequestError(
        422,
        f"column {column!r}, row {row}: expected a string, number or null, "
        f"got {type(value).__name__}.",
    )


class RowDecoder:
    """Check request rows against the model's input columns and turn them into a DataFrame."""

    def __init__(self, columns, kinds, *, max_rows=None, max_text_chars=None):
        self.columns = list(columns)
        self.max_rows = max_rows
        self.max_text_chars = max_text_chars
        self.kinds = {c: kinds.get(c, "other") for c in self.columns}
        #: column -> its kind's registry entry, for the columns that arrive as uploaded files
        self.uploads = {}
        for column, kind in self.kinds.items():
            entry = _upload_kind(kind)
            if entry is not None:
                self.uploads[column] = entry

    def check_columns(self, names, row):
        unknown = [n for n in names if n not in self.kinds]
        if unknown:
            raise RequestError(
                400,
                f"row {row}: unknown column(s) {unknown}; expected columns: {self.columns}.",
            )
        missing = [c for c in self.columns if c not in names]
        if missing:
            raise RequestError(
                422,
                f"row {row}: missing column(s) {missing}; expected columns: {self.columns} "
                "(send null for an absent value).",
            )

    def value(self, column, value, row):
        if column in self.uploads:
            return _file_value(value, self.uploads[column], column, row)
        if self.kinds[column] == "numeric":
            return _numeric_value(value, column, row)
        return _plain_value(value, column, row, self.max_text_chars)

    def frame(self, rows):
        if self.max_rows is not None and len(rows) > self.max_rows:
            raise RequestError(
                413, f'field "rows": {len(rows):,} rows, over the limit of {self.max_rows:,} per '
                "request (the server's --max-rows); send them in several requests."
            )
        records = []
        for number, row in enumerate(rows):
            if not isinstance(row, dict):
                raise RequestError(
                    400,
                    f"rows[{number}] must be an object {{column: value}}, got "
                    f"{type(row).__name__}.",
                )
            self.check_columns(list(row), number)
            records.append({c: self.value(c, row[c], number) for c in self.columns})
        frame = pd.DataFrame(records, columns=self.columns)
        for column in self.columns:
            if self.kinds[column] == "numeric":
                frame[column] = frame[column].astype(float)
            elif column in self.uploads:
                frame[column] = frame[column].astype(object)
        return frame


def _rows_from_json(data):
    try:
        body = json.loads(data)
    except (ValueError, UnicodeDecodeError) as exc:
        raise RequestError(400, f"malformed JSON body: {exc}.") from None
    except RecursionError:
        raise RequestError(400, "malformed JSON body: nested too deeply.") from None
    if not isinstance(body, dict):
        raise RequestError(
            400, f'expected a JSON object {{"rows": [...]}} or {{"row": {{...}}}}, got {type(body).__name__}.'
        )
    if ("rows" in body) == ("row" in body):
        raise RequestError(
            400,
            f'expected exactly one of the fields "rows" (a list of objects) or "row" (an object); '
            f"found fields {sorted(body)}.",
        )
    if "row" in body:
        if not isinstance(body["row"], dict):
            raise RequestError(400, f'field "row" must be an object, got {type(body["row"]).__name__}.')
        return [body["row"]]
    rows = body["rows"]
    if not isinstance(rows, list) or not rows:
        raise RequestError(400, 'field "rows" must be a non-empty list of objects.')
    return rows


def _row_from_form(request, decoder):
    row = {}
    for name in request.files:
        uploads = request.files.getlist(name)
        if len(uploads) > 1:
            raise RequestError(400, f"field {name!r}: one file per column, got {len(uploads)}.")
        kind = decoder.kinds.get(name)
        if kind is not None and name not in decoder.uploads:
            raise RequestError(
                422, f"field {name!r} is a {kind} column: send it as a form field, not a file."
            )
        row[name] = uploads[0].read()
    for name in request.form:
        values = request.form.getlist(name)
        if len(values) > 1:
            raise RequestError(400, f"field {name!r}: one value per column, got {len(values)}.")
        if name in row:
            raise RequestError(400, f"field {name!r} sent both as a file and as a form field.")
        row[name] = values[0]
    return [row]


def _served_kinds(pipeline, recorded):
    """The kind of each input column, a file kind whenever the pipeline or the file says so.

    The model file's metadata is not trusted alone: every encoder a column
    reaches inside the pipeline counts (see :func:`skmm.infer.kinds_reached`),
    so a column an encoder reads as files is taken only as uploaded bytes.
    """
    from .._fitted import describe_inputs

    kinds = dict(recorded)
    for column, kind in describe_inputs(pipeline)["kinds"].items():
        if column in kinds and _upload_kind(kind) is not None and _upload_kind(kinds[column]) is None:
            kinds[column] = kind
    return kinds
