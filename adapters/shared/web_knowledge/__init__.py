"""Knowledge from the web: docs sites and GitHub repositories, fetched safely, kept in sync, cited by link."""
