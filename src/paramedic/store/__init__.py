"""Persistence: SQLAlchemy tables, repositories, Alembic migrations, the audit hash chain and leases."""
