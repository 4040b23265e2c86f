"""`manage.py` and the `crudkit` console script: a click group of project commands.

    python manage.py migrate
    crudkit --settings mysite.settings createsuperuser

An app adds commands from its `AppConfig.ready()`; they receive the project
(settings, installed apps, database) through `pass_project`::

    @click.command()
    @pass_project
    def seed(project: Project) -> None:
        asyncio.run(load_samples(project))

    class ShopConfig(crudkit.AppConfig):
        def ready(self) -> None:
            super().ready()
            self.apps.add_command(seed)
"""

from crudkit.cli.group import main
from crudkit.cli.project import CommandError, Project, pass_project

__all__ = ["CommandError", "Project", "main", "pass_project"]
