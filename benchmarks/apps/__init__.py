"""The apps under test; each module has a `create_app()` factory for `uvicorn --factory`."""
