"""CRM Cockpit: snapshots of every customer-data source, gated by data-quality suites, served to a dashboard."""

__version__ = "0.1.0"
