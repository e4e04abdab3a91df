"""CRM Cockpit: snapshots of every customer-data source, gated by data-quality suites, served to a dashboard."""

__version__ = "0.1.0"

import warnings

# pyspark (the spark extra), which Great Expectations imports when it is installed, warns on import that
# pandas 3 is not fully supported; what the cockpit runs on it works with pandas 3 (measured): noise.
warnings.filterwarnings("ignore", message="PySpark does not yet fully support pandas", category=FutureWarning)
