#!/usr/bin/env python
"""The example project's command line: python manage.py --help"""

import os
import sys
from pathlib import Path

if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    os.environ.setdefault("CRUDKIT_SETTINGS_MODULE", "settings")
    from crudkit.cli import main

    main()
