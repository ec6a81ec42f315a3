"""Apache Airflow provider for Cronofy."""

__version__ = "0.2.0"
