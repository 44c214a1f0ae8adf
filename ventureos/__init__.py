"""VentureOS Lakehouse core library: settings, storage, catalog, schemas and backends."""

__version__ = "0.1.0"
