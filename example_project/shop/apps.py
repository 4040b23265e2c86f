"""The shop app's configuration: its resources, and a `seed` command for the demo."""

from __future__ import annotations

import crudkit


class ShopConfig(crudkit.AppConfig):
    name = "shop"
    verbose_name = "Shop"

    def ready(self) -> None:
        super().ready()  # imports shop.resources, which registers the models
        from shop.commands import seed

        self.apps.add_command(seed)
