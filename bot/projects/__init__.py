"""Project templates for ``clerk init`` (data files, not code): ``minimal/`` here, and
``demo-store/``, which a wheel build copies from the repository's demo project (setup.py)."""
