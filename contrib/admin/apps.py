"""The admin app: a sqladmin panel over every registered resource."""

from __future__ import annotations

from crudkit.apps import AppConfig


class AdminConfig(AppConfig):
    name = "crudkit.contrib.admin"
    label = "admin"
    verbose_name = "Administration"
    models_module = None
    resources_module = None
