"""Training beside the serving chain: ``train`` (versioned artifacts, model registry),
``evaluate`` (reports), ``tune`` (Optuna search), ``validate`` (data checks), ``reports``
(figures) and ``commands`` (the ``clerk`` subcommands). Nothing on the serving path imports
this package (an import-linter contract in pyproject.toml checks it)."""
