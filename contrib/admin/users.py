"""Users in the admin: a password field hashed on save, and privileges kept for superusers.

The stored hash is write-only: it is in no list, page, form or export. The
form has a `password` field instead, checked against the same rules as the
API's (length, numeric, similarity, common passwords), required when adding a
user and left blank on edit to keep the current one; it is hashed by the app's
`PasswordHasher` (a bounded number of hashes at once) before the row is written.
A new password bumps `token_version` (`UserResource.before_update`), ending the
user's other sessions.

Only superusers see and set `is_staff`, `is_superuser`, groups and direct
permissions, and only superusers may change or delete a superuser: a staff
member with `auth.change_user` cannot make themselves, or anyone, more
powerful than they are. The write pipeline holds the same line on every
channel (`crudkit.contrib.auth.escalation`): nor can they change or delete a
user holding a permission they lack, which the form reports as an error.
"""

from __future__ import annotations

import types
from typing import Any

from starlette.requests import Request
from wtforms import PasswordField
from wtforms.validators import StopValidation, ValidationError

from crudkit.contrib.admin.auth import VERSION_KEY
from crudkit.contrib.admin.errors import FormError
from crudkit.contrib.admin.views import ResourceView, view_for
from crudkit.contrib.auth.deps import get_services
from crudkit.contrib.auth.passwords import password_problems
from crudkit.exceptions import ServiceUnavailable
from crudkit.permissions import get_user
from crudkit.resources import Resource

PRIVILEGED_FIELDS = frozenset({"is_staff", "is_superuser", "groups", "user_permissions"})
PASSWORD_FIELD = "password"


def _value(form: Any, name: str) -> str:
    return str(form[name].data or "") if name in form else ""


class PasswordRules:
    """WTForms validator: the API's password rules (on edit, a blank field is let through
    before it gets here: it keeps the current password)."""

    def __call__(self, form: Any, field: Any) -> None:
        if not field.data:
            raise StopValidation("A password is required.")
        problems = password_problems(
            field.data, username=_value(form, "username"), email=_value(form, "email")
        )
        if problems:
            raise ValidationError(" ".join(problems))


class UserView(ResourceView):
    """The admin of the user model."""

    @classmethod
    def get_form_exclusions(cls, request: Request) -> set[str]:
        return set() if get_user(request).is_superuser else set(PRIVILEGED_FIELDS)

    @classmethod
    def get_optional_on_edit(cls) -> set[str]:
        return {PASSWORD_FIELD}

    async def scaffold_form(self, rules: list[str] | None = None) -> Any:
        form = await super().scaffold_form(rules)
        # Declared here, after the model's fields, so it is the form's last field.
        password = PasswordField(
            "Password", validators=[PasswordRules()], render_kw={"class": "form-control"}
        )
        return types.new_class(
            form.__name__, (form,), {}, lambda namespace: namespace.update(password=password)
        )

    def _guards_superuser(self, request: Request, model: Any) -> bool:
        return bool(model.is_superuser) and not get_user(request).is_superuser

    async def check_can_edit(self, request: Request, model: Any) -> bool:
        allowed = await super().check_can_edit(request, model)
        return allowed and not self._guards_superuser(request, model)

    async def check_can_delete(self, request: Request, model: Any) -> bool:
        allowed = await super().check_can_delete(request, model)
        return allowed and not self._guards_superuser(request, model)

    async def on_model_change(
        self, data: dict[str, Any], model: Any, is_created: bool, request: Request
    ) -> None:
        password = data.pop(PASSWORD_FIELD, None)
        await super().on_model_change(data, model, is_created, request)
        if password:
            try:
                data["hashed_password"] = await get_services(request).hasher.hash(password)
            except ServiceUnavailable:
                raise FormError("The server is busy; please try again in a moment.") from None

    async def after_model_change(
        self, data: dict[str, Any], model: Any, is_created: bool, request: Request
    ) -> None:
        # Changing your own password ends your other sessions, not this one.
        if not is_created and model.id == get_user(request).id:
            request.session[VERSION_KEY] = model.token_version


def user_view(resource: Resource) -> type[ResourceView]:
    """The view of the user resource: `password` in place of the stored hash."""
    hidden = set(resource.write_only_fields)
    view = view_for(resource, base=UserView)
    view.form_columns = [name for name in view.form_columns if name not in hidden]
    view.form_edit_rules = [name for name in view.form_edit_rules if name not in hidden]
    view.form_overrides = {}
    return view
