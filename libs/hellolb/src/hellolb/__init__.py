"""Shared code of the hello services: protocol, configuration parsing, logging, reload."""
