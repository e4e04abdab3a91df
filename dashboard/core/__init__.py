"""The foundation every layer stands on: config, errors, entities, the data dictionary, the snapshot store,
parsing, the DuckDB build toolkit and the audit log.
"""
