#!/usr/bin/env python
"""Django's command-line utility for administrative tasks."""

import os
import sys


def main() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "hitl_project.settings")
    serving = len(sys.argv) > 1 and sys.argv[1] in {"runserver", "testserver"}
    if not serving:
        # Commands may run without DJANGO_SECRET_KEY; servers (runserver, gunicorn,
        # celery) still need it unless debug is on.
        os.environ.setdefault("HITL_MANAGEMENT_COMMAND", "1")
    from django.core.management import execute_from_command_line

    execute_from_command_line(sys.argv)


if __name__ == "__main__":
    main()
