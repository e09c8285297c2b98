"""Reaching the web safely: public addresses only, bounded pages, one request at a time a host, robots.txt."""
