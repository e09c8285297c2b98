"""Tests of Slack's installs: OAuth to any workspace, the installation stores, token rotation, each workspace apart."""
