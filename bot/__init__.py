"""Clerk: a customer-service bot platform for online stores."""

__version__ = "0.1.0"
