"""The base of every admin form: it carries the CSRF token and knows who is asking.

sqladmin renders `form.hidden_tag()` when a form has one, so that hook is where
the session's CSRF token goes in, server-side, with no template copied; an edit
form's hidden fields include the version of the row it edits. Forms
are built per request, so each one also drops the fields the current user may
not write (only superusers see `is_superuser`, say) and relaxes the fields
that may be left blank on edit (a write-only secret keeps its value).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar, Protocol

from markupsafe import Markup
from starlette.requests import Request
from wtforms import Form, HiddenField
from wtforms.validators import DataRequired, InputRequired, Optional

from crudkit.contrib.admin.context import current_request
from crudkit.contrib.admin.csrf import get_token, hidden_input

VERSION_FIELD = "crudkit_version"
"""The edit form's hidden field holding the version of the row it was opened on."""

_FORM_KEY = "crudkit_form"


def add_field_errors(request: Request, errors: Mapping[str | None, list[str]]) -> None:
    """Show `errors` on the fields of the form this request is saving (when it has one)."""
    form = request.scope.get(_FORM_KEY)
    if form is None:
        return
    for name, messages in errors.items():
        if name is not None and name not in form:
            name = name.split(".", 1)[0]  # an item of a list (`tags.1`): on the list's field
        if name is not None and name in form:
            field = form[name]
            field.errors = [*field.errors, *messages]


class FormOwner(Protocol):
    """What a form asks of the admin view it belongs to."""

    @classmethod
    def get_form_exclusions(cls, request: Request) -> set[str]: ...

    @classmethod
    def get_optional_on_edit(cls) -> set[str]: ...


class AdminForm(Form):  # type: ignore[misc]  # wtforms ships no type hints
    view_class: ClassVar[type[FormOwner] | None] = None
    """The admin view the form belongs to; set per view."""

    is_create: bool
    """Whether the form creates a row (else it edits one)."""

    crudkit_version = HiddenField()
    """On edit, the version of the row the form was opened on (see `writes.py`)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        request = current_request()
        request.scope[_FORM_KEY] = self  # the form a refused save reports back to
        self.is_create = "pk" not in request.path_params
        if self.is_create:
            del self[VERSION_FIELD]
        view = type(self).view_class
        if view is None:
            return
        for name in view.get_form_exclusions(request):
            if name in self:
                del self[name]
        if not self.is_create:
            for name in view.get_optional_on_edit():
                if name in self:
                    _make_optional(self[name])

    def hidden_tag(self) -> Markup:
        token = get_token(current_request().session)
        hidden = [
            Markup(field())
            for field in self
            if getattr(field.widget, "input_type", None) == "hidden"
        ]
        return Markup("").join([hidden_input(token), *hidden])


KEEP_HINT = "Leave blank to keep the current value."


def _make_optional(field: Any) -> None:
    # Assign new lists: validators handed to an unbound field are shared by every form.
    field.validators = [
        Optional(),
        *(v for v in field.validators if not isinstance(v, InputRequired | DataRequired)),
    ]
    field.flags.required = False
    field.description = field.description or KEEP_HINT
