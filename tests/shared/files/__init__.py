"""Tests of adapters/shared/files/: attachments, documents and images read in isolated worker processes."""
