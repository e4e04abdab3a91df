"""The Spark engine ([engine] kind = "spark"): a refresh's heavy derived steps as Spark jobs on a cluster,
from the same SQL the DuckDB engine runs (transpiled), writing the same derived-build files."""
