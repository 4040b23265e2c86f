"""`python -m crudkit.cli`: the `crudkit` console script."""

from crudkit.cli import main

main(prog_name="crudkit")
