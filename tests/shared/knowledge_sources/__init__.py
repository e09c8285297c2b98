"""Tests of adapters/shared/knowledge_sources/: knowledge channels and their shared flows."""
