"""Tools the model can call: the MCP servers the operator connected (MCP_SERVERS_FILE), each call checked and, where
needed, allowed by a person first."""
