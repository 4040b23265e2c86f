"""Migrations of this app (made by `manage.py makemigrations`)."""
