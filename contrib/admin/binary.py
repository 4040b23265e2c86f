"""Binary columns in the admin: base64 text, as the API's JSON carries them.

    form_overrides = {"data": Base64Field}               # what `options.py` declares
    column_formatters = {"data": binary_size}            # lists and details: "12 bytes"

Left to sqladmin, a binary column is a textarea holding `b'...'`, and saving it
hands the text to the database driver, which refuses it with a raw SQL error.
Here the textarea holds the content as base64 and a save decodes it; text that
is not base64 is an error on the field, and nothing is written. Editing (rather
than showing the size read-only) keeps the admin accepting what the API accepts:
a required binary column can still be filled in on create.
"""

from __future__ import annotations

import base64
import binascii
from typing import Any

from wtforms import TextAreaField

from crudkit.fields import to_base64


class Base64Field(TextAreaField):  # type: ignore[misc]  # wtforms ships no type hints
    """A binary column edited as base64 text (RFC 4648); line breaks and spaces are ignored."""

    def _value(self) -> str:
        if self.raw_data:  # shown again as typed, after an error
            return str(self.raw_data[0])
        return "" if self.data is None else to_base64(self.data)

    def process_formdata(self, valuelist: list[Any]) -> None:
        if not valuelist:
            return
        text = "".join(str(valuelist[0]).split())
        self.data = None
        if not text:
            return  # blank: null where allowed, else the field's required check says so
        try:
            self.data = base64.b64decode(text, validate=True)
        except (binascii.Error, ValueError):
            raise ValueError(self.gettext("Not valid base64 text.")) from None


def binary_size(model: Any, name: str) -> str:
    """A list and details formatter: the size of a binary value, not its bytes."""
    value = getattr(model, name)
    if value is None:
        return ""
    size = len(value)
    return f"{size} byte" if size == 1 else f"{size} bytes"
