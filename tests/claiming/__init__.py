"""Tests of ``pytest_kruise_agents.claiming``: one module per rule module."""
