"""Apache Airflow provider for Cronofy."""

__version__ = "0.1.0"
